"""Read NYU Depth v2: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5) and ``splits.mat`` (v5).

The same code reads the real files and the synthetic twin (``pipeline.data.synthetic``), so every
layout fact lives here once. MATLAB stores arrays column-major, so h5py sees the 480x640x3xN
``images`` as (N, 3, 640, 480) and the 480x640xN ``depths`` as (N, 640, 480);
:meth:`LabeledFile.image` undoes that. Every malformed input raises :class:`NYUFormatError` naming
the file and the problem, so the user never has to decode an h5py or scipy traceback.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import scipy.io

LABELED_NAME = "nyu_depth_v2_labeled.mat"
SPLITS_NAME = "splits.mat"

HEIGHT, WIDTH = 480, 640
# Kinect RGB intrinsics at 640x480 (NYU Depth v2 toolbox).
FX, FY, CX, CY = 518.86, 519.47, 325.58, 253.74

MAT73_USERBLOCK = 512  # MATLAB v7.3 files are HDF5 with a 512-byte user block holding the header.
MAT73_MAGIC = b"MATLAB 7.3 MAT-file"
MAT5_MAGIC = b"MATLAB 5.0 MAT-file"

# Dataset name -> (shape after the image axis, dtype), as h5py sees the MATLAB arrays.
_REQUIRED = {
    "images": ((3, WIDTH, HEIGHT), np.dtype(np.uint8)),
    "depths": ((WIDTH, HEIGHT), np.dtype(np.float32)),
}
_SPLIT_KEYS = ("trainNdxs", "testNdxs")


class NYUFormatError(ValueError):
    """A NYU-format file is missing, truncated or not laid out like the real dataset."""


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")


def _read_header(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(128)


def read_splits(
    path: str | os.PathLike[str], num_images: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted 0-based ``(train_idx, test_idx)`` int64 arrays from a NYU ``splits.mat``.

    The file stores 1-based MATLAB indices (uint16 column vectors in the real file); row vectors
    and any integer-valued numeric type are accepted. ``num_images`` bounds the indices from above.
    """
    path = Path(path)
    _require_file(path)
    if _read_header(path).startswith(MAT73_MAGIC):
        raise NYUFormatError(f"{path}: is a MATLAB v7.3 (HDF5) file; splits must be a v5 MAT-file")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises many unrelated types for corrupt input
        raise NYUFormatError(f"{path}: not a readable MATLAB v5 MAT-file ({e})") from e
    found = sorted(k for k in mat if not k.startswith("__"))
    train, test = (_split_vector(path, mat, key, found, num_images) for key in _SPLIT_KEYS)
    overlap = np.intersect1d(train, test)
    if overlap.size:
        raise NYUFormatError(
            f"{path}: trainNdxs and testNdxs overlap in {overlap.size} indices "
            f"(first 1-based: {(overlap[:5] + 1).tolist()})"
        )
    return train, test


def _split_vector(
    path: Path, mat: dict, key: str, found: list[str], num_images: int | None
) -> np.ndarray:
    if key not in mat:
        raise NYUFormatError(f"{path}: missing key {key!r} (found {found})")
    arr = mat[key]
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "uif":
        raise NYUFormatError(f"{path}: {key} must be a numeric array, got {type(arr).__name__}")
    if arr.ndim > 2 or (arr.ndim == 2 and min(arr.shape) > 1):
        raise NYUFormatError(f"{path}: {key} must be a vector, got shape {arr.shape}")
    flat = arr.ravel()
    if flat.size == 0:
        raise NYUFormatError(f"{path}: {key} is empty")
    if arr.dtype.kind == "f" and not (np.isfinite(flat).all() and (flat == np.round(flat)).all()):
        raise NYUFormatError(f"{path}: {key} holds non-integer values")
    idx = flat.astype(np.int64)
    if idx.min() < 1 or (num_images is not None and idx.max() > num_images):
        allowed = ">= 1" if num_images is None else f"in 1..{num_images}"
        raise NYUFormatError(
            f"{path}: {key} indices out of range: 1-based indices must be {allowed}, "
            f"got min {idx.min()}, max {idx.max()}"
        )
    unique = np.unique(idx)
    if unique.size != idx.size:
        raise NYUFormatError(f"{path}: {key} repeats {idx.size - unique.size} indices")
    return unique - 1


class LabeledFile:
    """Lazy view of an open ``nyu_depth_v2_labeled.mat``: one image is read per call."""

    def __init__(self, path: Path, h5: h5py.File) -> None:
        self.path = path
        self._images, self._depths = (self._dataset(h5, key) for key in _REQUIRED)
        if self._images.shape[0] != self._depths.shape[0]:
            raise NYUFormatError(
                f"{path}: images has {self._images.shape[0]} entries but depths has "
                f"{self._depths.shape[0]}"
            )
        if self._images.shape[0] == 0:
            raise NYUFormatError(f"{path}: holds no images")

    def _dataset(self, h5: h5py.File, key: str) -> h5py.Dataset:
        tail, dtype = _REQUIRED[key]
        if key not in h5:
            raise NYUFormatError(f"{self.path}: missing key {key!r} (found {sorted(h5)})")
        ds = h5[key]
        if not isinstance(ds, h5py.Dataset):
            raise NYUFormatError(f"{self.path}: {key!r} is a group, expected a dataset")
        if ds.ndim != len(tail) + 1 or ds.shape[1:] != tail:
            expected = ", ".join(map(str, tail))
            raise NYUFormatError(
                f"{self.path}: {key} has shape {ds.shape}, expected (N, {expected})"
            )
        if ds.dtype != dtype:
            raise NYUFormatError(f"{self.path}: {key} has dtype {ds.dtype}, expected {dtype}")
        return ds

    def __len__(self) -> int:
        return self._images.shape[0]

    def image(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``i`` (0-based): rgb (480, 640, 3) uint8 and depth (480, 640) float32 metres."""
        i = operator.index(i)
        if not 0 <= i < len(self):
            raise NYUFormatError(
                f"{self.path}: image index {i} out of range 0..{len(self) - 1} (0-based)"
            )
        try:
            rgb = self._images[i].transpose(2, 1, 0)
            depth = self._depths[i].T
        except (OSError, RuntimeError, ValueError) as e:  # h5py: bad chunk, failed inflate
            raise NYUFormatError(
                f"{self.path}: cannot read image {i} (0-based; corrupt file?): {e}"
            ) from e
        if not np.isfinite(depth).all():
            bad = np.count_nonzero(~np.isfinite(depth))
            raise NYUFormatError(
                f"{self.path}: depths of image {i} (0-based) hold {bad} NaN/inf values"
            )
        if (depth < 0).any():
            raise NYUFormatError(f"{self.path}: depths of image {i} (0-based) hold negative values")
        return np.ascontiguousarray(rgb), np.ascontiguousarray(depth)


@contextmanager
def open_labeled(path: str | os.PathLike[str]) -> Iterator[LabeledFile]:
    """Open a NYU labeled .mat read-only, checking the MATLAB header, keys, shapes and dtypes."""
    path = Path(path)
    _require_file(path)
    header = _read_header(path)
    if not header.startswith(MAT73_MAGIC):
        if header.startswith(MAT5_MAGIC):
            what = "a MATLAB v5 MAT-file"
        elif h5py.is_hdf5(path):
            what = "HDF5 without the 512-byte MATLAB 7.3 header"
        else:
            what = "neither a MATLAB MAT-file nor HDF5"
        raise NYUFormatError(f"{path}: expected a MATLAB 7.3 MAT-file (HDF5), got {what}")
    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        raise NYUFormatError(f"{path}: cannot open as HDF5 (truncated or corrupt?): {e}") from e
    try:
        yield LabeledFile(path, h5)
    finally:
        h5.close()
