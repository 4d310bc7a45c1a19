"""Reading raw Kinect frames: the toolbox's byte order, and one clear error per bad file."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.nyu import NYUFormatError
from pipeline.data.raw import read_pgm, read_ppm


def test_pgm_payload_is_little_endian_despite_the_header(tmp_path):
    # What the recorder writes: a PGM header, then the buffer in memory (little-endian).
    # Bytes 0x01 0x02 are 0x0201 = 513 after the toolbox's swapbytes(imread(...)).
    values = np.arange(640 * 480, dtype=np.uint32).reshape(480, 640) % 2048
    path = tmp_path / "d-1315403270.612296-3297269125.pgm"
    path.write_bytes(b"P5 640 480 65535\n" + values.astype("<u2").tobytes())
    first = tmp_path / "d-1.0-1.pgm"
    first.write_bytes(b"P5 2 1 65535\n\x01\x02\xff\x07")
    assert read_pgm(first).tolist() == [[0x0201, 2047]]
    frame = read_pgm(path)
    assert frame.dtype == np.uint16 and frame.shape == (480, 640)
    np.testing.assert_array_equal(frame, values)


def test_pgm_header_with_comments_and_newlines(tmp_path):
    path = tmp_path / "d.pgm"
    path.write_bytes(b"P5\n# made by a test\n3 1\n# max\n65535\n" + b"\x00\x01\x02\x00\x03\x00")
    assert read_pgm(path).tolist() == [[256, 2, 3]]


def test_ppm_is_rgb_bytes_in_order(tmp_path):
    path = tmp_path / "r-1315403270.593508-3296461305.ppm"
    rgb = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    path.write_bytes(b"P6 640 480 255\n" + rgb.tobytes())
    np.testing.assert_array_equal(read_ppm(path), rgb)


@pytest.mark.parametrize(
    ("reader", "name", "content", "message"),
    [
        (read_pgm, "d-1.5-7.pgm", b"P5 2 1 65535\n\x01\x02\x03", "truncated: 3 bytes of pixel"),
        (read_pgm, "d-1.5-7.pgm", b"P5 2 1 65535\n\x01\x02\x03\x04\x05", "trailing bytes"),
        (read_pgm, "d-1.5-7.pgm", b"P2 2 1 65535\n1 2", "not a binary PGM file"),
        (read_pgm, "d-1.5-7.pgm", b"P5 2 1 255\n\x01\x02", "8-bit PGM"),
        (read_pgm, "d-1.5-7.pgm", b"P5 2 x 65535\n\x01\x02\x03\x04", "malformed Netpbm header"),
        (read_pgm, "d-1.5-7.pgm", b"P5 2 1 65535", "no raster after maxval"),
        (read_pgm, "d-1.5-7.pgm", b"P5 0 1 65535\n", "bad Netpbm header"),
        (read_pgm, "d-1.5-7.pgm", b"", "not a binary PGM file"),
        (read_ppm, "r-1.5-7.ppm", b"P6 1 1 255\n\x01\x02", "truncated"),
        (read_ppm, "r-1.5-7.ppm", b"P5 1 1 255\n\x01\x02\x03", "not a binary PPM file"),
        (read_ppm, "r-1.5-7.ppm", b"P6 1 1 65535\n" + bytes(6), "16-bit PPM"),
    ],
)
def test_bad_file_is_one_error_naming_it(tmp_path, reader, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NYUFormatError, match=message) as err:
        reader(path)
    assert str(err.value).startswith(f"{path}: ")
