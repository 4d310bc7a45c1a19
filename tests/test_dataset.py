"""DepthDataset (loader and device paths), split_rows and mean_depth on small processed HDF5s."""

from __future__ import annotations

import pickle
from pathlib import Path

import e2e
import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from pipeline.config import AugmentConfig
from pipeline.data.augment import encode_depth
from pipeline.data.dataset import DepthDataset, DeviceSplit, make_loader, mean_depth, split_rows

HW = (48, 64)
NEAR, FAR = 2.0, 4.0  # depth of the bright square and of the dark background
NO_AUGMENT = {"scale": (1.0, 1.0), "rotation_deg": 0.0, "color": 0.0, "hflip": False}


def write_h5(path: Path, rgb: np.ndarray, depth: np.ndarray, skip: str = "") -> Path:
    data = {"rgb": rgb, "depth": depth, "index": np.arange(len(rgb), dtype=np.int64) * 3}
    return e2e.write_h5(path, **{name: array for name, array in data.items() if name != skip})


def square_scene(n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A bright 16x16 square at depth NEAR in the centre of a dark FAR background."""
    rgb = np.full((n, *HW, 3), 60, np.uint8)
    depth = np.full((n, *HW), FAR, np.float32)
    rgb[:, 16:32, 24:40] = 250
    depth[:, 16:32, 24:40] = NEAR
    return rgb, depth


def augmented(tmp_path: Path, epoch: int = 0, **augment: object) -> dict[str, np.ndarray]:
    path = write_h5(tmp_path / "square.h5", *square_scene())
    ds = DepthDataset(path, [0], HW, AugmentConfig(**{**NO_AUGMENT, **augment}), seed=0)
    ds.set_epoch(epoch)
    return {key: value.numpy() for key, value in ds[0].items()}


def assert_square_aligned(sample: dict[str, np.ndarray], near: float) -> None:
    """The square found in RGB and the one found in depth cover the same pixels."""
    bright = sample["rgb"][0] > 0.6
    close = np.isclose(sample["depth"][0], near)
    assert close.sum() > 100
    assert (bright ^ close).sum() <= 0.15 * close.sum()  # at most a 1-pixel rim differs
    centre = [np.argwhere(mask).mean(axis=0) for mask in (bright, close)]
    np.testing.assert_allclose(centre[0], centre[1], atol=0.25)


def test_sample_keys_shapes_and_dtypes(tmp_path: Path) -> None:
    sample = augmented(tmp_path, scale=(1.0, 1.2), rotation_deg=5.0, color=0.1, hflip=True)
    assert sample["rgb"].shape == (3, *HW) and sample["rgb"].dtype == np.float32
    assert sample["depth"].shape == (1, *HW) and sample["depth"].dtype == np.float32
    assert sample["index"].shape == () and sample["index"].dtype == np.int64
    assert sample["rgb"].min() >= 0.0 and sample["rgb"].max() <= 1.0


def test_random_crop_keeps_alignment(tmp_path: Path) -> None:
    rgb, depth = square_scene()
    path = write_h5(tmp_path / "square.h5", rgb, depth)
    ds = DepthDataset(path, [0], (32, 40), AugmentConfig(**NO_AUGMENT), seed=0)
    corners = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        sample = ds[0]
        # Undo the crop by finding it: the crop is an exact window of the stored image.
        depth_crop = sample["depth"][0].numpy()
        rgb_crop = (sample["rgb"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        found = [
            (t, left)
            for t in range(HW[0] - 32 + 1)
            for left in range(HW[1] - 40 + 1)
            if np.array_equal(depth[0, t : t + 32, left : left + 40], depth_crop)
            and np.array_equal(rgb[0, t : t + 32, left : left + 40], rgb_crop)
        ]
        assert found
        corners.add(found[0])
    assert len(corners) > 1


def test_flip_mirrors_rgb_and_depth_together(tmp_path: Path) -> None:
    rgb, depth = square_scene()
    rgb[0, :, :8] = 0  # make the scene asymmetric, in both modalities
    depth[0, :, :8] = 1.0
    path = write_h5(tmp_path / "square.h5", rgb, depth)
    ds = DepthDataset(path, [0], HW, AugmentConfig(**{**NO_AUGMENT, "hflip": True}), seed=0)
    plain = torch.from_numpy(rgb[0]).permute(2, 0, 1).float() / 255, torch.from_numpy(depth)
    flipped = [0, 0]
    for epoch in range(16):
        ds.set_epoch(epoch)
        sample = ds[0]
        is_flipped = not torch.equal(sample["depth"], plain[1])
        expected = [x.flip(-1) for x in plain] if is_flipped else list(plain)
        torch.testing.assert_close(sample["rgb"], expected[0], rtol=0, atol=0)
        torch.testing.assert_close(sample["depth"], expected[1], rtol=0, atol=0)
        flipped[is_flipped] += 1
    assert min(flipped) > 0  # both outcomes were drawn


def test_scale_divides_depth_and_invents_none(tmp_path: Path) -> None:
    # A non-integer factor: off-by-half-pixel depth resampling misaligns the square here.
    sample = augmented(tmp_path, scale=(1.2, 1.2))
    # Rows 10..48, columns 13..64 of the 58x77 scaled image are in every crop: the square is.
    np.testing.assert_allclose(np.unique(sample["depth"]), [NEAR / 1.2, FAR / 1.2], rtol=1e-6)
    assert_square_aligned(sample, NEAR / 1.2)
    assert abs(np.isclose(sample["depth"], NEAR / 1.2).sum() - 19.2**2) <= 20  # 1.2x larger


def test_rotation_marks_rotated_in_corners_invalid(tmp_path: Path) -> None:
    for epoch in range(3):
        sample = augmented(tmp_path, epoch, rotation_deg=20.0)
        assert_square_aligned(sample, NEAR)
        invalid = sample["depth"][0] == 0
        assert invalid.sum() > 50 and invalid[0, 0] | invalid[0, -1]  # corners, no depth...
        assert sample["rgb"][:, invalid].max() < 60 / 255  # ...and RGB faded to the fill 0
        assert set(np.unique(sample["depth"])) <= {0.0, NEAR, FAR}


def test_color_gains_touch_only_rgb(tmp_path: Path) -> None:
    sample = augmented(tmp_path, color=0.5)
    rgb, depth = square_scene()
    np.testing.assert_array_equal(sample["depth"][0], depth[0])
    gains = sample["rgb"][:, 0, 0] / (60 / 255)
    assert np.all((gains >= 0.5) & (gains <= 1.5)) and np.ptp(gains) > 0
    expected = np.clip(rgb[0].transpose(2, 0, 1) / 255 * gains[:, None, None], 0, 1)
    np.testing.assert_allclose(sample["rgb"], expected, atol=1e-5)


def test_no_augment_is_the_exact_centre_crop(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, *HW, 3), dtype=np.uint8)
    depth = rng.uniform(0, 10, (3, *HW)).astype(np.float32)
    ds = DepthDataset(write_h5(tmp_path / "r.h5", rgb, depth), [2, 0], (40, 50), None, seed=0)
    assert len(ds) == 2
    sample = ds[0]
    np.testing.assert_array_equal(sample["depth"][0].numpy(), depth[2, 4:44, 7:57])
    expected_rgb = rgb[2, 4:44, 7:57].transpose(2, 0, 1).astype(np.float32) / 255
    np.testing.assert_array_equal(sample["rgb"].numpy(), expected_rgb)
    assert sample["index"].item() == 6


def random_file(tmp_path: Path, n: int = 10) -> Path:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (n, *HW, 3), dtype=np.uint8)
    depth = rng.uniform(0, 10, (n, *HW)).astype(np.float32)
    return write_h5(tmp_path / "random.h5", rgb, depth)


PAPER = AugmentConfig(scale=(1.0, 1.2), rotation_deg=5.0, color=0.1, hflip=True)


def test_draws_depend_on_seed_epoch_and_row_only(tmp_path: Path) -> None:
    path = random_file(tmp_path)
    a = DepthDataset(path, range(10), (40, 56), PAPER, seed=7)
    b = DepthDataset(path, [9, 3], (40, 56), PAPER, seed=7)
    torch.testing.assert_close(a[3], b[1], rtol=0, atol=0)  # same row, other subset and order
    a.set_epoch(1)
    assert not torch.equal(a[3]["rgb"], b[1]["rgb"])
    b.set_epoch(1)
    torch.testing.assert_close(a[3], b[1], rtol=0, atol=0)
    copy = pickle.loads(pickle.dumps(a))  # after a read: the open handle is not pickled
    torch.testing.assert_close(copy[3], a[3], rtol=0, atol=0)


def test_loader_batches_do_not_depend_on_workers(tmp_path: Path) -> None:
    ds = DepthDataset(random_file(tmp_path), range(10), (40, 56), PAPER, seed=0)
    ds.set_epoch(2)
    runs = [list(make_loader(ds, 4, True, workers, 5, drop_last=False)) for workers in (0, 2)]
    assert [len(batch["index"]) for batch in runs[0]] == [4, 4, 2]
    assert not torch.equal(runs[0][0]["index"], torch.arange(4) * 3)  # shuffled
    for one, two in zip(*runs, strict=True):
        torch.testing.assert_close(one, two, rtol=0, atol=0)


def test_bad_files_are_named(tmp_path: Path) -> None:
    rgb, depth = square_scene(2)
    path = write_h5(tmp_path / "no_index.h5", rgb, depth, skip="index")
    with pytest.raises(ValueError, match=r"no_index\.h5: missing dataset.*index"):
        DepthDataset(path, [0], HW, None, seed=0)
    path = write_h5(tmp_path / "small.h5", rgb, depth)
    with pytest.raises(ValueError, match=r"small\.h5: crop_hw \(48, 80\) is larger"):
        DepthDataset(path, [0], (48, 80), None, seed=0)
    with pytest.raises(ValueError, match=r"small\.h5: rows must lie in \[0, 2\)"):
        DepthDataset(path, [2], HW, None, seed=0)


@pytest.mark.parametrize(("n", "fraction", "n_val"), [(10, 0.1, 1), (7, 0.5, 4), (2, 0.01, 1)])
def test_split_rows(n: int, fraction: float, n_val: int) -> None:
    train, val = split_rows(n, fraction, seed=3)
    assert len(val) == n_val and len(train) == n - n_val
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    again = split_rows(n, fraction, seed=3)
    np.testing.assert_array_equal(again[0], train)
    np.testing.assert_array_equal(again[1], val)


def test_split_rows_edges() -> None:
    train, val = split_rows(5, 0.0, seed=0)
    np.testing.assert_array_equal(train, np.arange(5))
    assert val.size == 0
    assert split_rows(100, 0.2, seed=0)[1].tolist() != split_rows(100, 0.2, seed=1)[1].tolist()
    with pytest.raises(ValueError, match="val_fraction"):
        split_rows(5, 1.0, seed=0)


def test_mean_depth_ignores_missing_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    depth = rng.uniform(0.5, 9, (4, *HW)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.3] = 0.0
    path = write_h5(tmp_path / "d.h5", np.zeros((4, *HW, 3), np.uint8), depth)
    assert mean_depth(path) == pytest.approx(depth[depth > 0].mean(dtype=np.float64), rel=1e-12)
    some = depth[[1, 3]]
    assert mean_depth(path, [1, 3]) == pytest.approx(some[some > 0].mean(dtype=np.float64))


def test_device_batches_equal_loader_batches_bit_for_bit(tmp_path: Path) -> None:
    """The device path (here on the CPU) augments whole batches, the loader a batch of one per
    sample: the same (seed, epoch, image) gives the same bits, whatever the batch."""
    paper = AugmentConfig(scale=(1.0, 1.5), rotation_deg=5.0, color=0.2, hflip=True)
    ds = DepthDataset(random_file(tmp_path), [0, 2, 3, 5, 6, 7, 9], (40, 56), paper, seed=3)
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=3)
    device = DeviceSplit(ds, torch.device("cpu"), sampler, 3)
    loader = make_loader(ds, 3, False, 0, 3, drop_last=True, sampler=sampler)
    for epoch in (0, 4):
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        pairs = list(zip(device, loader, strict=True))
        assert len(pairs) == 2
        for on_device, from_loader in pairs:
            torch.testing.assert_close(on_device, from_loader, rtol=0, atol=0)
    assert device.rgb.dtype == torch.uint8 and device.depth.dtype == torch.uint16


def test_depth_is_stored_in_millimetres_and_nan_survives(tmp_path: Path) -> None:
    depth = np.array([0.0, 1.2344, 9.9996, 70.0, -1.0, np.nan, np.inf], np.float32)
    mm = encode_depth(depth)
    np.testing.assert_array_equal(mm, [0, 1234, 10000, 65534, 0, 65535, 65535])
    rgb, stored = square_scene()
    stored[0, 20:24, 28:32] = np.nan  # inside the square, which every crop keeps
    path = write_h5(tmp_path / "nan.h5", rgb, stored)
    sample = DepthDataset(path, [0], HW, PAPER, seed=0)[0]
    assert sample["depth"].isnan().any()  # the training step's finite check still sees it
