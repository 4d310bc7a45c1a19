"""Which raw scene folders may train: the labeled file's ``scenes`` under ``splits.mat``'s split.

The labeled file names the scene of each image (``scenes``, e.g. ``kitchen_0028``) and the raw
frames it was made from (``rawDepthFilenames``/``rawRgbFilenames``, ``<folder>/<file>``). A raw
archive holds folders named after the scene plus a recording letter (``kitchen_0028b``). The
training scenes are the scenes of ``trainNdxs`` minus any scene that also has a test image, so a
test scene never reaches training, whatever the split file says.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np

from pipeline.data.nyu import NYUFormatError, open_labeled, read_splits

_RECORDING_LETTER = re.compile(r"[a-z]$")


def read_cellstr(path: str | os.PathLike[str], key: str) -> list[str]:
    """A MATLAB cell array of strings of the labeled file (references to uint16 char arrays)."""
    with h5py.File(path, "r") as h5:
        if key not in h5:
            raise NYUFormatError(f"{path}: missing key {key!r}, needed for the raw frames")
        refs = h5[key][()].ravel()
        return [h5[ref][()].ravel().astype(np.uint16).tobytes().decode("utf-16-le") for ref in refs]


def folder_scene(folder: str) -> str:
    """The scene a raw folder records: its name without the recording letter."""
    return _RECORDING_LETTER.sub("", folder)


def split_scenes(labeled: Path, splits: Path) -> tuple[set[str], set[str]]:
    """``(train_scenes, test_scenes)``: disjoint, training loses any scene that has a test image."""
    with open_labeled(labeled) as f:
        num_images = len(f)
    train_idx, test_idx = read_splits(splits, num_images=num_images)
    scenes = read_cellstr(labeled, "scenes")
    if len(scenes) != num_images:
        raise NYUFormatError(f"{labeled}: {len(scenes)} scenes for {num_images} images")
    test = {folder_scene(scenes[i]) for i in test_idx}
    train = {folder_scene(scenes[i]) for i in train_idx} - test
    return train, test
