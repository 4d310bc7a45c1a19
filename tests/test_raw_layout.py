"""The raw layout written (names, PGM with a little-endian payload, PPM, .dump) and read back."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pipeline.data.nyu import NYUFormatError
from pipeline.data.raw import (
    frame_name,
    read_accel,
    read_pgm,
    read_ppm,
    synced_frames,
    write_accel,
    write_pgm,
    write_ppm,
)


def test_names_are_the_recorders():
    assert frame_name("d", 1315403270.612296, 3297269125) == "d-1315403270.612296-3297269125.pgm"
    assert frame_name("r", 1.5, 7) == "r-1.500000-7.ppm"
    assert frame_name("a", 1.5, 7) == "a-1.500000-7.dump"


def test_pgm_bytes_are_the_recorders(tmp_path):
    path = tmp_path / "d.pgm"
    write_pgm(path, np.array([[0x0201, 2047]], dtype=np.uint16))
    assert path.read_bytes() == b"P5 2 1 65535\n\x01\x02\xff\x07"


def test_a_written_scene_reads_back_and_pairs(tmp_path):
    rng = np.random.default_rng(3)
    scene = tmp_path / "kitchen_0028b"
    scene.mkdir()
    written = {}
    # Depth at 30 Hz, RGB slightly later, accelerometer at 10 Hz: real frame rates.
    for i in range(4):
        name = frame_name("d", 1315403270.0 + i / 30, 1000 + i)
        written[name] = rng.integers(0, 2048, (480, 640), dtype=np.uint16)
        write_pgm(scene / name, written[name])
        name = frame_name("r", 1315403270.004 + i / 30, 2000 + i)
        written[name] = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        write_ppm(scene / name, written[name])
    for i in range(2):
        name = frame_name("a", 1315403270.01 + i / 10, 3000 + i)
        written[name] = (i, -2 * i, 819, -31)
        write_accel(scene / name, *written[name])
    (scene / "INDEX.txt").write_text("\n".join(sorted(written)) + "\n")

    pairs = synced_frames(os.listdir(scene))
    assert [d for d, _, _ in pairs] == sorted(n for n in written if n.startswith("d"))
    assert [r for _, r, _ in pairs] == sorted(n for n in written if n.startswith("r"))
    # Depth at +0, 33, 67, 100 ms; accelerometer at +10 and +110 ms: the first two are nearer the
    # first dump, the last two nearer the second.
    first, second = frame_name("a", 1315403270.01, 3000), frame_name("a", 1315403270.11, 3001)
    assert [a for _, _, a in pairs] == [first, first, second, second]
    for depth, rgb, accel in pairs:
        np.testing.assert_array_equal(read_pgm(scene / depth), written[depth])
        np.testing.assert_array_equal(read_ppm(scene / rgb), written[rgb])
        assert read_accel(scene / accel) == written[accel]
    assert sorted(os.listdir(scene)) == sorted([*written, "INDEX.txt"])  # no temporary left


def test_accel_dump_is_twelve_bytes(tmp_path):
    path = tmp_path / "a-1.0-0.dump"
    write_accel(path, 1, 2, 3, -4)
    assert path.read_bytes() == b"\x01\x00\x02\x00\x03\x00\xfc\x00\x00\x00\x00\x00"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(NYUFormatError, match=r"a-1\.0-0\.dump: 10 bytes"):
        read_accel(path)


def test_writers_refuse_the_wrong_array(tmp_path):
    with pytest.raises(ValueError, match="2-D uint16"):
        write_pgm(tmp_path / "d.pgm", np.zeros((4, 4), dtype=np.int32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        write_ppm(tmp_path / "r.ppm", np.zeros((4, 4), dtype=np.uint8))
    assert not list(tmp_path.iterdir())
