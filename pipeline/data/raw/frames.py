"""The sampled raw frames: every ``step``-th synced frame of each training folder, as a CSV.

The CSV (``index,folder,depth,rgb``) is a DVC output, so a change of ``data.raw.step`` re-runs
only what reads it. ``index`` continues after the labeled file's images, so raw and labeled
images never share an index (validation checks train and test are disjoint on it).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline.config import DataConfig
from pipeline.data.raw.sync import synced_frames
from pipeline.io import atomic_path

COLUMNS = ("index", "folder", "depth", "rgb")


class RawFrame(NamedTuple):
    index: int
    folder: str
    depth: str
    rgb: str


def sample_frames(
    scenes_dir: Path,
    folders: Iterable[str],
    step: int,
    max_frames: int | None,
    first_index: int,
) -> list[RawFrame]:
    """Synced frames 0, step, 2 step, ... of each folder (sorted); thinned evenly to the cap."""
    picked = []
    for folder in sorted(folders):
        pairs = synced_frames(os.listdir(Path(scenes_dir) / folder))
        picked += [(folder, depth, rgb) for depth, rgb, _ in pairs[::step]]
    if max_frames is not None and len(picked) > max_frames:
        keep = np.linspace(0, len(picked) - 1, max_frames).round().astype(int)
        picked = [picked[i] for i in keep]
    return [RawFrame(first_index + k, *row) for k, row in enumerate(picked)]


def write_frames(path: Path, frames: list[RawFrame]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(frames)


def read_frames(path: Path) -> list[RawFrame]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [RawFrame(int(r["index"]), r["folder"], r["depth"], r["rgb"]) for r in rows]


def train_indices(
    data: DataConfig, labeled_train: np.ndarray, raw_frames: Path | None
) -> tuple[np.ndarray | list[int], str | None]:
    """The image indices train.h5 must hold, and the raw frame list they come from (if any)."""
    if data.train_source == "labeled":
        return labeled_train, None
    if raw_frames is None:
        raise ValueError("data.train_source: raw needs --raw-frames")
    return [frame.index for frame in read_frames(raw_frames)], str(raw_frames)
