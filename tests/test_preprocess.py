"""Preprocessing real HDF5 files written by the synthetic NYU generator."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.config import PreprocessConfig
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME, NYUFormatError, open_labeled, read_splits
from pipeline.data.preprocess import center_crop, preprocess, resize_pair
from pipeline.data.synthetic import generate
from pipeline.io import md5sum

CFG = PreprocessConfig(resize_hw=(240, 320), crop_hw=(228, 304))


@pytest.fixture(scope="module")
def raw_dir(module_tmp: Callable[[str], Path]) -> Path:
    raw = module_tmp("raw")
    generate(raw, num_images=6, seed=3, test_fraction=0.34, workers=1)
    return raw


def test_resize_invents_no_depth_and_averages_rgb() -> None:
    rng = np.random.default_rng(0)
    depth = rng.choice(np.array([0.0, 1.5, 7.25], np.float32), size=(480, 640))
    blocks = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    rgb = blocks.repeat(2, axis=0).repeat(2, axis=1)  # constant 2x2 cells: box filter is exact
    rgb_small, depth_small = resize_pair(rgb, depth, (240, 320))
    assert depth_small.dtype == np.float32 and depth_small.shape == (240, 320)
    assert set(np.unique(depth_small)) <= {0.0, 1.5, 7.25}
    np.testing.assert_array_equal(rgb_small, blocks)


def test_center_crop_takes_the_middle() -> None:
    grid = np.arange(240 * 320).reshape(240, 320)
    crop = center_crop(grid, (228, 304))
    assert crop.shape == (228, 304)
    assert crop[0, 0] == grid[6, 8] and crop[-1, -1] == grid[233, 311]


def test_preprocess_layout_and_content(raw_dir: Path, tmp_path: Path) -> None:
    train_path, test_path = preprocess(raw_dir / LABELED_NAME, raw_dir / SPLITS_NAME, tmp_path, CFG)
    train_idx, test_idx = read_splits(raw_dir / SPLITS_NAME)
    with h5py.File(train_path) as train, h5py.File(test_path) as test:
        assert train.attrs["split"] == "train" and test.attrs["split"] == "test"
        np.testing.assert_array_equal(train["index"][()], train_idx)
        np.testing.assert_array_equal(test["index"][()], test_idx)
        assert train["rgb"].shape == (len(train_idx), 240, 320, 3)
        assert train["depth"].shape == (len(train_idx), 240, 320)
        assert test["rgb"].shape == (len(test_idx), 228, 304, 3)
        assert test["depth"].dtype == np.float32
        assert "depth_full" not in train
        with open_labeled(raw_dir / LABELED_NAME) as labeled:
            rgb, depth = labeled.image(int(test_idx[0]))
            np.testing.assert_array_equal(test["depth_full"][0], depth)
            rgb_small, depth_small = resize_pair(rgb, depth, CFG.resize_hw)
            np.testing.assert_array_equal(test["rgb"][0], center_crop(rgb_small, CFG.crop_hw))
            np.testing.assert_array_equal(test["depth"][0], center_crop(depth_small, CFG.crop_hw))
            rgb, depth = labeled.image(int(train_idx[-1]))
            rgb_small, depth_small = resize_pair(rgb, depth, CFG.resize_hw)
            np.testing.assert_array_equal(train["rgb"][-1], rgb_small)
            np.testing.assert_array_equal(train["depth"][-1], depth_small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.h5", "train.h5"]


def test_preprocess_is_byte_deterministic(raw_dir: Path, tmp_path: Path) -> None:
    first = preprocess(raw_dir / LABELED_NAME, raw_dir / SPLITS_NAME, tmp_path / "a", CFG)
    second = preprocess(raw_dir / LABELED_NAME, raw_dir / SPLITS_NAME, tmp_path / "b", CFG)
    assert [md5sum(p) for p in first] == [md5sum(p) for p in second]


def test_bad_image_leaves_no_output(raw_dir: Path, tmp_path: Path) -> None:
    """A NaN in one test image fails the run with the file and index; neither split is published
    (a new train.h5 beside an old test.h5 would be a pair made with different params)."""
    labeled = tmp_path / LABELED_NAME
    shutil.copy(raw_dir / LABELED_NAME, labeled)
    _, test_idx = read_splits(raw_dir / SPLITS_NAME)
    bad = int(test_idx[-1])
    with h5py.File(labeled, "r+") as f:
        f["depths"][bad, 10, 20] = np.nan
    out = tmp_path / "processed"
    with pytest.raises(NYUFormatError, match=rf"{LABELED_NAME}.*{bad}") as info:
        preprocess(labeled, raw_dir / SPLITS_NAME, out, CFG)
    assert "NaN" in str(info.value) or "nan" in str(info.value).lower()
    assert list(out.iterdir()) == []
