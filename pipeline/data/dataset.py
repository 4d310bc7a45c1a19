"""Training/validation samples from a processed ``train.h5``, with the paper's augmentations.

Every random draw comes from a generator seeded by (seed, epoch, row), so a sample depends on
nothing else: not the number of DataLoader workers, not the order rows are visited in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from pipeline.config import AugmentConfig
from pipeline.data.preprocess import center_crop
from pipeline.inference import to_input

REQUIRED = ("rgb", "depth", "index")


class DepthDataset(Dataset[dict[str, torch.Tensor]]):
    """Rows ``rows`` of an HDF5 file in the ``pipeline.data.preprocess`` layout."""

    def __init__(
        self,
        path: Path,
        rows: Sequence[int] | np.ndarray,
        crop_hw: tuple[int, int],
        augment: AugmentConfig | None,
        seed: int,
    ) -> None:
        self.path = Path(path)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.crop_hw = (int(crop_hw[0]), int(crop_hw[1]))
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._h5: h5py.File | None = None
        self._pid = -1
        # Check the layout now, so a bad file fails before training starts, not in a worker.
        with h5py.File(self.path, "r") as h5:
            missing = [name for name in REQUIRED if name not in h5]
            if missing:
                raise ValueError(f"{self.path}: missing dataset(s) {missing}")
            n, h, w = h5["rgb"].shape[:3]
        if self.crop_hw[0] > h or self.crop_hw[1] > w:
            raise ValueError(
                f"{self.path}: crop_hw {self.crop_hw} is larger than the stored images {(h, w)}"
            )
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= n):
            raise ValueError(f"{self.path}: rows must lie in [0, {n}), got {self.rows}")

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Make the next draws those of ``epoch`` (call before each epoch's loader starts)."""
        self.epoch = epoch

    def __getstate__(self) -> dict[str, Any]:
        # An open HDF5 handle cannot be pickled (spawn workers); each process opens its own.
        return {**self.__dict__, "_h5": None, "_pid": -1}

    def _file(self) -> h5py.File:
        # A handle inherited through fork is shared with the parent and unsafe: reopen it.
        if self._h5 is None or self._pid != os.getpid():
            self._h5, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._h5

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """Sample ``i``, a dict of tensors (H, W = ``crop_hw``):

        - ``"rgb"``: (3, H, W) float32 in [0, 1], the network's input.
        - ``"depth"``: (1, H, W) float32 metres; 0 = invalid (missing, or rotated-in border).
        - ``"index"``: () int64, 0-based image index in the labeled .mat (lineage).
        """
        row = int(self.rows[i])
        h5 = self._file()
        rgb_np, depth_np = h5["rgb"][row], h5["depth"][row]
        if self.augment is None:  # the same window test.h5 was cut with
            rgb_np = center_crop(rgb_np, self.crop_hw)
            depth_np = center_crop(depth_np, self.crop_hw)
        rgb = to_input(rgb_np[None])[0]
        depth = torch.from_numpy(depth_np)[None]
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, row])
            rgb, depth = augment_pair(rgb, depth, self.crop_hw, self.augment, rng)
        index = torch.tensor(int(h5["index"][row]), dtype=torch.int64)
        return {"rgb": rgb, "depth": depth, "index": index}


def augment_pair(
    rgb: torch.Tensor,
    depth: torch.Tensor,
    crop_hw: tuple[int, int],
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale, rotate, random-crop, flip and colour a (3, H, W) RGB / (1, H, W) depth pair.

    Depth is resampled with nearest neighbour so no depth is invented between an edge and the
    wall behind it; both modes sample at the same pixel centres, keeping RGB and depth aligned.
    """
    if cfg.scale[1] > 1.0:  # an image s times larger shows the scene s times nearer
        s = rng.uniform(*cfg.scale)
        size = [round(rgb.shape[1] * s), round(rgb.shape[2] * s)]
        rgb = TF.resize(rgb, size, InterpolationMode.BILINEAR, antialias=True)
        depth = TF.resize(depth, size, InterpolationMode.NEAREST_EXACT) / s
    if cfg.rotation_deg > 0.0:  # corners rotated in get RGB 0 and depth 0 (invalid)
        angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
        rgb = TF.rotate(rgb, angle, InterpolationMode.BILINEAR, fill=0.0)
        depth = TF.rotate(depth, angle, InterpolationMode.NEAREST, fill=0.0)
    top = int(rng.integers(0, rgb.shape[1] - crop_hw[0] + 1))
    left = int(rng.integers(0, rgb.shape[2] - crop_hw[1] + 1))
    rgb, depth = TF.crop(rgb, top, left, *crop_hw), TF.crop(depth, top, left, *crop_hw)
    if cfg.hflip and rng.random() < 0.5:
        rgb, depth = TF.horizontal_flip(rgb), TF.horizontal_flip(depth)
    if cfg.color > 0.0:
        gains = rng.uniform(1.0 - cfg.color, 1.0 + cfg.color, size=3).astype(np.float32)
        rgb = (rgb * torch.from_numpy(gains)[:, None, None]).clamp_(0.0, 1.0)
    return rgb, depth


def split_rows(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) rows of 0..n-1 from a seeded permutation; val gets round(n * f).

    Validation keeps at least one row when ``val_fraction > 0`` and training at least one.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    n_val = round(n * val_fraction)
    if val_fraction > 0.0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(n - 1, 0))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def mean_depth(path: Path, rows: Sequence[int] | np.ndarray | None = None) -> float:
    """Mean of the valid (> 0) depth pixels of ``rows`` (all if None), one image at a time.

    It initialises the last layer's bias and is the constant "train-set mean" baseline.
    """
    total, count = 0.0, 0
    with h5py.File(path, "r") as h5:
        ds = h5["depth"]
        for row in range(len(ds)) if rows is None else rows:
            depth = ds[int(row)]
            valid = depth[depth > 0]
            total += float(valid.sum(dtype=np.float64))
            count += valid.size
    if count == 0:
        raise ValueError(f"{path}: no valid depth pixels in the selected rows")
    return total / count


def make_loader(
    dataset: DepthDataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int,
    drop_last: bool,
    sampler: Sampler[int] | None = None,
) -> DataLoader:
    """A DataLoader whose shuffled order comes from ``seed`` alone.

    Workers are not persistent: each epoch's workers copy the dataset afresh and so see the
    epoch set by ``set_epoch``. No ``worker_init_fn`` is needed, since samples seed their own
    generators.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )
