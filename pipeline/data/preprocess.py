"""Raw NYU labeled .mat -> per-split HDF5 files the trainer and evaluator read directly.

Layout of ``train.h5`` / ``test.h5`` (N images of the split, in split order):

- ``rgb``   (N, H, W, 3) uint8: resized to ``resize_hw`` (train) or resized then centre-cropped to
  ``crop_hw`` (test). Train keeps the full resized frame so training can draw random crops.
- ``depth`` (N, H, W) float32 metres, same H, W as ``rgb``; 0 marks a missing value.
- ``index`` (N,) int64: 0-based image index into the labeled .mat, for lineage and validation.
- ``depth_full`` (N, 480, 640) float32, test only: the original ground truth, because both
  evaluation protocols score predictions upsampled to the full 640x480 frame.

Depth is resized with nearest neighbour so no depth value is invented between a foreground edge
and the wall behind it; RGB uses an area (box) filter, which is exact averaging at factor 0.5.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline.config import PreprocessConfig
from pipeline.data.nyu import open_labeled, read_splits
from pipeline.io import NewH5File, atomic_outputs

FULL_HW = (480, 640)


def resize_pair(
    rgb: np.ndarray, depth: np.ndarray, size_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize RGB with a box filter and depth with nearest neighbour to ``size_hw``."""
    size_wh = (size_hw[1], size_hw[0])
    rgb_small = np.asarray(Image.fromarray(rgb).resize(size_wh, Image.Resampling.BOX))
    depth_small = np.asarray(Image.fromarray(depth).resize(size_wh, Image.Resampling.NEAREST))
    return rgb_small, depth_small.astype(np.float32, copy=False)


def center_crop(array: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """Crop the central ``crop_hw`` window of an (H, W, ...) array."""
    top = (array.shape[0] - crop_hw[0]) // 2
    left = (array.shape[1] - crop_hw[1]) // 2
    return array[top : top + crop_hw[0], left : left + crop_hw[1]]


def image_dataset(h5: h5py.File, name: str, shape: tuple[int, ...], dtype: type) -> h5py.Dataset:
    # One image per chunk: the training loader reads single images at random.
    # track_times=False keeps the file byte-identical across runs (DVC hashes it).
    return h5.create_dataset(
        name, shape=shape, dtype=dtype, chunks=(1, *shape[1:]), track_times=False
    )


def write_split(
    labeled_path: Path,
    indices: np.ndarray,
    out_path: Path,
    split: str,
    cfg: PreprocessConfig,
) -> Path:
    """Stream the images ``indices`` of ``labeled_path`` into a new HDF5 file ``out_path``.

    ``out_path`` is written in place: give it a temporary path (``pipeline.io.atomic_outputs``),
    as ``preprocess`` does, so that a failure never leaves half a split under the real name.
    """
    is_test = split == "test"
    out_hw = cfg.crop_hw if is_test else cfg.resize_hw
    n = len(indices)
    with open_labeled(labeled_path) as labeled, NewH5File(out_path, track_order=False) as h5:
        rgb_ds = image_dataset(h5, "rgb", (n, *out_hw, 3), np.uint8)
        depth_ds = image_dataset(h5, "depth", (n, *out_hw), np.float32)
        full_ds = image_dataset(h5, "depth_full", (n, *FULL_HW), np.float32) if is_test else None
        h5.create_dataset("index", data=np.asarray(indices, np.int64), track_times=False)
        h5.attrs["split"] = split
        h5.attrs["resize_hw"] = cfg.resize_hw
        h5.attrs["crop_hw"] = cfg.crop_hw
        for row, i in enumerate(tqdm(indices, desc=f"preprocess {split}", unit="img")):
            rgb, depth = labeled.image(int(i))
            rgb_small, depth_small = resize_pair(rgb, depth, cfg.resize_hw)
            if is_test:
                rgb_small = center_crop(rgb_small, cfg.crop_hw)
                depth_small = center_crop(depth_small, cfg.crop_hw)
                full_ds[row] = depth
            rgb_ds[row] = rgb_small
            depth_ds[row] = depth_small
            h5.raise_write_error()  # a full disk stops the loop now, not at the end
    return out_path


def preprocess(
    labeled_path: Path, splits_path: Path, out_dir: Path, cfg: PreprocessConfig
) -> tuple[Path, Path]:
    """Write ``out_dir/train.h5`` and ``out_dir/test.h5``; return their paths.

    The two are published together: a failure in either leaves the previous pair (made with
    the previous params) intact, never a new train split beside an old test split.
    """
    with open_labeled(labeled_path) as labeled:
        num_images = len(labeled)
    train_idx, test_idx = read_splits(splits_path, num_images=num_images)
    train, test = Path(out_dir) / "train.h5", Path(out_dir) / "test.h5"
    with atomic_outputs(train, test) as (train_tmp, test_tmp):
        write_split(labeled_path, train_idx, train_tmp, "train", cfg)
        write_split(labeled_path, test_idx, test_tmp, "test", cfg)
    return train, test
