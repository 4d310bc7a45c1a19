"""Training/validation samples from a processed ``train.h5``, with the paper's augmentations
(`pipeline.data.augment`): per sample for DataLoader workers (`DepthDataset`), or per batch from
a split held in device memory (`DeviceSplit`).

Every random draw comes from a generator seeded by (seed, epoch, row), so a sample depends on
nothing else: not the number of DataLoader workers, not the order rows are visited in, not the
path that made it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler
from tqdm import tqdm

from pipeline.config import AugmentConfig
from pipeline.data.augment import augment_batch, draws_for, encode_depth, to_input
from pipeline.data.preprocess import center_crop

REQUIRED = ("rgb", "depth", "index")
LOAD_CHUNK = 256  # rows read from HDF5 per copy to the device (~0.1 GB at 240x320)


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
        self.stored_hw = (int(h), int(w))
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
        index = torch.tensor(int(h5["index"][row]), dtype=torch.int64)
        if self.augment is None:  # the same window test.h5 was cut with
            rgb = to_input(center_crop(rgb_np, self.crop_hw)[None])[0]
            depth = torch.from_numpy(center_crop(depth_np, self.crop_hw))[None]
            return {"rgb": rgb, "depth": depth, "index": index}
        # A batch of one through the same ops the device path runs on whole batches.
        draws = draws_for(self.augment, self.seed, self.epoch, [row], self.stored_hw, self.crop_hw)
        mm = torch.from_numpy(encode_depth(depth_np))
        rgb, depth = augment_batch(torch.from_numpy(rgb_np)[None], mm[None], draws, self.crop_hw)
        return {"rgb": rgb[0], "depth": depth[0], "index": index}


class DeviceSplit:
    """The rows of an augmented `DepthDataset` held in device memory, augmented there a batch at
    a time.

    Stored as uint8 RGB and uint16 millimetre depth (`pipeline.data.augment.encode_depth`), 5
    bytes a pixel: the 795 labeled frames at 240x320 take 0.3 GB, 48k raw frames 18 GB. Batches
    follow ``sampler`` (positions into ``rows``) as a DataLoader with ``drop_last`` would, and
    equal the DataLoader's batches over `DepthDataset` (bit for bit on the CPU): the draws and the
    ops are the same. Iterating never waits for the device: the few host-side numbers (draws,
    positions) travel in pinned memory without blocking.
    """

    def __init__(
        self, dataset: DepthDataset, device: torch.device, sampler: Sampler[int], batch_size: int
    ) -> None:
        if dataset.augment is None:
            raise ValueError(f"{dataset.path}: the device path serves augmented training batches")
        self.dataset, self.device = dataset, device
        self.batches = BatchSampler(sampler, batch_size, drop_last=True)
        rows, path = dataset.rows, dataset.path
        with h5py.File(path, "r") as h5:
            self.index = h5["index"][()][rows]
            self.rgb = torch.empty(
                (len(rows), *dataset.stored_hw, 3), dtype=torch.uint8, device=device
            )
            self.depth = torch.empty(
                (len(rows), *dataset.stored_hw), dtype=torch.uint16, device=device
            )
            chunks = range(0, len(rows), LOAD_CHUNK)
            for start in tqdm(chunks, desc=f"loading {path.name} into {device}", unit="chunk"):
                part = rows[start : start + LOAD_CHUNK]  # sorted: h5py reads it in one pass
                self.rgb[start : start + len(part)] = torch.from_numpy(h5["rgb"][part])
                mm = encode_depth(h5["depth"][part])
                self.depth[start : start + len(part)] = torch.from_numpy(mm)

    @staticmethod
    def nbytes(dataset: DepthDataset) -> int:
        """Device memory the split of ``dataset``'s rows would take."""
        h, w = dataset.stored_hw
        return len(dataset.rows) * h * w * 5

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        pin = self.device.type == "cuda"
        for positions in self.batches:
            pos = np.asarray(positions)
            ds = self.dataset  # its epoch (`set_epoch`) picks the draws, as in the loader path
            draws = draws_for(ds.augment, ds.seed, ds.epoch, ds.rows[pos], ds.stored_hw, ds.crop_hw)
            at = torch.from_numpy(pos)
            if pin:
                draws, at = draws.pin_memory(), at.pin_memory()
            at = at.to(self.device, non_blocking=True)
            draws = draws.to(self.device, non_blocking=True)
            rgb, depth = augment_batch(self.rgb[at], self.depth[at], draws, ds.crop_hw)
            yield {"rgb": rgb, "depth": depth, "index": torch.from_numpy(self.index[pos])}


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
