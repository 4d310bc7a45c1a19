"""The NYU reader against files laid out like the real ones, and against each kind of bad input.

Files here are built with raw h5py/scipy from the layout facts of the real dataset (docs/design.md),
not with the synthetic generator, so a transpose bug cannot cancel out between writer and reader.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from pipeline.data.nyu import HEIGHT, WIDTH, NYUFormatError, open_labeled, read_splits

N = 3
# The real file's user block: 116 bytes of text, 8-byte subsystem offset, version 0x0200, 'IM'.
HEADER = (
    (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Mar 13 17:02:19 2012 "
        b"HDF5 schema 1.00 ."
    ).ljust(116, b" ")
    + b"\0" * 8
    + b"\x00\x02IM"
)


def coded_rgb(i: int, row: np.ndarray, col: np.ndarray, ch: np.ndarray) -> np.ndarray:
    """A pixel value that names its image, row, column and channel."""
    values = (row % 256, col % 256, 10 * i + 3 * (row // 256) + col // 256)
    return np.choose(ch, values).astype(np.uint8)


def coded_depth(i: int, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    return (1.0 + i + row / 512 + col / 65536).astype(np.float32)  # exact in float32


def matlab_layout(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """images (n, 3, 640, 480) and depths (n, 640, 480): h5py's view of MATLAB's 480x640(x3)xN."""
    ch, col, row = np.ix_(np.arange(3), np.arange(WIDTH), np.arange(HEIGHT))
    images = np.stack([coded_rgb(i, row, col, ch) for i in range(n)])
    depths = np.stack([coded_depth(i, row[0], col[0]) for i in range(n)])
    return images, depths


def write_mat73(path: Path, header: bytes | None = HEADER, **datasets: np.ndarray) -> Path:
    """A v7.3-style file: HDF5 with a 512-byte user block, one gzip chunk per image."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, data in datasets.items():
            chunks = (1, *data.shape[1:]) if data.ndim > 2 else None
            f.create_dataset(key, data=data, chunks=chunks, compression="gzip" if chunks else None)
    if header is not None:
        with open(path, "r+b") as raw:
            raw.write(header)
    return path


@pytest.fixture(scope="module")
def layout() -> tuple[np.ndarray, np.ndarray]:
    return matlab_layout()


@pytest.fixture
def good(tmp_path: Path, layout: tuple[np.ndarray, np.ndarray]) -> Path:
    images, depths = layout
    return write_mat73(tmp_path / "labeled.mat", images=images, depths=depths)


def open_error(path: Path) -> str:
    """The message ``open_labeled`` fails with; it must name the file."""
    with pytest.raises(NYUFormatError) as info, open_labeled(path):
        pass
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def test_reads_matlab_layout_row_major(good: Path) -> None:
    row, col = np.mgrid[0:HEIGHT, 0:WIDTH]
    with open_labeled(good) as data:
        assert len(data) == N
        for i in range(N):
            rgb, depth = data.image(i)
            assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
            assert depth.shape == (480, 640) and depth.dtype == np.float32
            assert rgb.flags.c_contiguous and depth.flags.c_contiguous
            for ch in range(3):
                np.testing.assert_array_equal(
                    rgb[..., ch], coded_rgb(i, row, col, np.full_like(row, ch))
                )
            np.testing.assert_array_equal(depth, coded_depth(i, row, col))


def test_accepts_numpy_integer_index(good: Path) -> None:
    with open_labeled(good) as data:
        rgb, _ = data.image(np.int64(2))
    assert rgb[0, 0, 2] == 20


def test_index_out_of_range(good: Path) -> None:
    with open_labeled(good) as data:
        for bad in (N, -1):
            with pytest.raises(NYUFormatError) as info:
                data.image(bad)
            assert str(info.value) == f"{good}: image index {bad} out of range 0..{N - 1} (0-based)"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info, open_labeled(tmp_path / "nope.mat"):
        pass
    assert str(info.value) == f"{tmp_path / 'nope.mat'}: no such file"


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "junk.mat"
    path.write_bytes(b"<html>404 Not Found</html>" * 40)
    assert "expected a MATLAB 7.3 MAT-file (HDF5), got neither a MATLAB MAT-file nor HDF5" in (
        open_error(path)
    )


def test_hdf5_without_matlab_header(tmp_path: Path, layout: tuple[np.ndarray, np.ndarray]) -> None:
    images, depths = layout
    path = write_mat73(tmp_path / "plain.h5", header=None, images=images, depths=depths)
    assert "got HDF5 without the 512-byte MATLAB 7.3 header" in open_error(path)


def test_matlab_v5_file_is_not_labeled_data(tmp_path: Path) -> None:
    path = tmp_path / "v5.mat"
    scipy.io.savemat(path, {"depths": np.zeros((2, 2))})
    assert "got a MATLAB v5 MAT-file" in open_error(path)


@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_truncated_file(tmp_path: Path, good: Path, keep: float) -> None:
    """An interrupted download: the header survives but the HDF5 structure is cut off."""
    data = good.read_bytes()
    path = tmp_path / "cut.mat"
    path.write_bytes(data[: int(len(data) * keep)])
    assert "cannot open as HDF5 (truncated or corrupt?)" in open_error(path)


def test_corrupt_chunk_names_the_image(good: Path) -> None:
    with h5py.File(good, "r") as f:
        chunk = f["images"].id.get_chunk_info(1)
    with open(good, "r+b") as raw:
        raw.seek(chunk.byte_offset + chunk.size // 2)
        raw.write(b"\xff\x00" * 64)
    with open_labeled(good) as data:
        data.image(0)  # untouched chunks still read
        with pytest.raises(NYUFormatError) as info:
            data.image(1)
    assert str(info.value).startswith(f"{good}: cannot read image 1 (0-based; corrupt file?): ")


def test_missing_key(tmp_path: Path, layout: tuple[np.ndarray, np.ndarray]) -> None:
    path = write_mat73(tmp_path / "nodepth.mat", images=layout[0])
    assert open_error(path).endswith("missing key 'depths' (found ['images'])")


def test_key_that_is_a_group(tmp_path: Path, layout: tuple[np.ndarray, np.ndarray]) -> None:
    path = write_mat73(tmp_path / "group.mat", images=layout[0])
    with h5py.File(path, "r+") as f:
        f.create_group("depths")
    assert open_error(path).endswith("'depths' is a group, expected a dataset")


def test_wrong_shape_row_major_images(
    tmp_path: Path, layout: tuple[np.ndarray, np.ndarray]
) -> None:
    """Images saved row-major (N, 3, 480, 640) instead of MATLAB's column-major layout."""
    images, depths = layout
    path = write_mat73(
        tmp_path / "rowmajor.mat", images=images.transpose(0, 1, 3, 2), depths=depths
    )
    assert open_error(path).endswith("images has shape (3, 3, 480, 640), expected (N, 3, 640, 480)")


def test_wrong_dtype(tmp_path: Path, layout: tuple[np.ndarray, np.ndarray]) -> None:
    images, depths = layout
    path = write_mat73(tmp_path / "f64.mat", images=images, depths=depths.astype(np.float64))
    assert open_error(path).endswith("depths has dtype float64, expected float32")


def test_image_count_mismatch(tmp_path: Path, layout: tuple[np.ndarray, np.ndarray]) -> None:
    images, depths = layout
    path = write_mat73(tmp_path / "short.mat", images=images, depths=depths[:2])
    assert open_error(path).endswith("images has 3 entries but depths has 2")


@pytest.mark.parametrize(
    ("value", "what"),
    [(np.nan, "hold 1 NaN/inf values"), (np.inf, "hold 1 NaN/inf values"), (-1.0, "negative")],
)
def test_bad_depth_values_name_the_image(
    tmp_path: Path, layout: tuple[np.ndarray, np.ndarray], value: float, what: str
) -> None:
    images, depths = layout
    depths = depths.copy()
    depths[1, 100, 200] = value
    path = write_mat73(tmp_path / "bad.mat", images=images, depths=depths)
    with open_labeled(path) as data:
        data.image(0)
        with pytest.raises(NYUFormatError) as info:
            data.image(1)
    assert str(info.value).startswith(f"{path}: depths of image 1 (0-based) hold")
    assert what in str(info.value)


# --- splits.mat -----------------------------------------------------------------------------


def write_splits(path: Path, **vectors: np.ndarray) -> Path:
    scipy.io.savemat(path, vectors, format="5")
    return path


def column(*one_based: int, dtype: type = np.uint16) -> np.ndarray:
    return np.array(one_based, dtype=dtype).reshape(-1, 1)


def test_splits_real_layout_to_zero_based(tmp_path: Path) -> None:
    """The real file: uint16 column vectors of 1-based indices (795x1 and 654x1 for N=1449)."""
    path = write_splits(tmp_path / "splits.mat", trainNdxs=column(5, 1, 2), testNdxs=column(4, 3))
    raw = scipy.io.loadmat(path)
    assert raw["trainNdxs"].dtype == np.uint16 and raw["trainNdxs"].shape == (3, 1)
    train, test = read_splits(path, num_images=5)
    assert train.dtype == np.int64 and test.dtype == np.int64
    np.testing.assert_array_equal(train, [0, 1, 4])
    np.testing.assert_array_equal(test, [2, 3])


def test_splits_accept_row_vectors_and_doubles(tmp_path: Path) -> None:
    row = np.array([[3.0, 1.0]])
    path = write_splits(tmp_path / "splits.mat", trainNdxs=row, testNdxs=np.array([[2.0]]))
    train, test = read_splits(path)
    np.testing.assert_array_equal(train, [0, 2])
    np.testing.assert_array_equal(test, [1])


def splits_error(path: Path, num_images: int | None = None) -> str:
    """The message ``read_splits`` fails with; it must name the file."""
    with pytest.raises(NYUFormatError) as info:
        read_splits(path, num_images=num_images)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


@pytest.mark.parametrize(
    ("train", "test", "num_images", "message"),
    [
        (
            column(0, 1),
            column(2),
            None,
            "trainNdxs indices out of range: 1-based indices must be >= 1, got min 0, max 1",
        ),
        (
            column(1, 2),
            column(3, 7),
            6,
            "testNdxs indices out of range: 1-based indices must be in 1..6, got min 3, max 7",
        ),
        (
            column(1, 2, 3),
            column(3, 4),
            None,
            "trainNdxs and testNdxs overlap in 1 indices (first 1-based: [3])",
        ),
        (column(1, 2), np.zeros((0, 1), np.uint16), None, "testNdxs is empty"),
        (column(1, 1, 2), column(3), None, "trainNdxs repeats 1 indices"),
        (
            column(1, 2, dtype=np.float64) + 0.5,
            column(3),
            None,
            "trainNdxs holds non-integer values",
        ),
        (
            np.ones((2, 3), np.uint16),
            column(3),
            None,
            "trainNdxs must be a vector, got shape (2, 3)",
        ),
    ],
)
def test_bad_splits_are_named(
    tmp_path: Path, train: np.ndarray, test: np.ndarray, num_images: int | None, message: str
) -> None:
    path = write_splits(tmp_path / "splits.mat", trainNdxs=train, testNdxs=test)
    assert splits_error(path, num_images).endswith(message)


def test_splits_wrong_key(tmp_path: Path) -> None:
    path = write_splits(tmp_path / "splits.mat", trainNdxs=column(1), testIdx=column(2))
    assert splits_error(path).endswith("missing key 'testNdxs' (found ['testIdx', 'trainNdxs'])")


def test_splits_given_a_v73_file(good: Path) -> None:
    assert "is a MATLAB v7.3 (HDF5) file; splits must be a v5 MAT-file" in splits_error(good)


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"MATLAB 5.0 MAT-file" + b"\0" * 20])
def test_splits_garbage_or_truncated(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "splits.mat"
    path.write_bytes(content)
    assert "not a readable MATLAB v5 MAT-file" in splits_error(path)


def test_splits_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        read_splits(tmp_path / "splits.mat")
    assert str(info.value) == f"{tmp_path / 'splits.mat'}: no such file"
