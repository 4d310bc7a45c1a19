"""The batched, overlapped `fcrn-predict` against the one-image-at-a-time loop it replaced."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_predict import _predict

from pipeline.inference import predict_depth, to_input
from pipeline.model.fcrn import FCRN
from pipeline.model.io import load_model, save_model
from pipeline.predictors import _resize

HW = (48, 64)
SIZES = [(50, 70), (61, 83), (40, 40), (96, 128), (33, 57), (48, 64), (75, 61)]  # (H, W)


@pytest.fixture(scope="module")
def model(module_tmp: Callable[[str], Path]) -> Path:
    torch.manual_seed(0)
    config = {"decoder": "upproj", "fast": True, "final_relu": True, "out_bias": 2.0}
    net = FCRN(**config)
    with torch.no_grad():
        net.head.weight.mul_(0.05)  # indoor-sized depths (a few metres), as trained models give
    path = module_tmp("model") / "fcrn.pt"
    save_model(net, config, path, HW, HW)
    return path


@pytest.fixture(scope="module")
def photos(module_tmp: Callable[[str], Path]) -> Path:
    folder = module_tmp("photos")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(folder / f"p{i}.png")
    return folder


@cache
def _net(path: Path) -> torch.nn.Module:
    return load_model(path)


def _one_at_a_time_mm(model: Path, image: Path) -> np.ndarray:
    """What `fcrn-predict` wrote before the pipeline: batch 1, resize, net, two upsamplings."""
    rgb = np.asarray(Image.open(image).convert("RGB"))
    small = np.array(Image.fromarray(rgb).resize(HW[::-1], Image.Resampling.BOX))
    x = to_input(small[None])
    depth = predict_depth(_net(model), x, x.shape[-2:])
    full = F.interpolate(depth[:, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return np.clip(np.round(full[0, 0].numpy() * 1000.0), 0, 65535).astype(np.uint16)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_batched_output_equals_the_one_at_a_time_loop(
    batch: int, model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 1 gives the same bits; other batches may change float rounding of the convolutions:
    at most 1 mm, and at least 99.9% of the pixels equal."""
    argv = ["--model", str(model), "--out", str(tmp_path), "--batch-size", str(batch)]
    assert _predict([*argv, "--workers", "3", str(photos)], monkeypatch) == 0
    equal = total = 0
    for i in range(len(SIZES)):
        got = np.asarray(Image.open(tmp_path / f"p{i}.png")).astype(int)
        expected = _one_at_a_time_mm(model, photos / f"p{i}.png").astype(int)
        assert got.shape == expected.shape == SIZES[i]
        assert np.abs(got - expected).max() <= (0 if batch == 1 else 1)
        equal, total = equal + (got == expected).sum(), total + got.size
        assert (tmp_path / f"p{i}_color.png").is_file()
    assert equal / total >= 0.999


def test_an_unreadable_image_mid_folder_is_one_line_and_the_rest_are_written(
    model: Path,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in photos.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "p3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    argv = ["--model", str(model), "--out", str(out), "--batch-size", "2", str(folder)]
    assert _predict(argv, monkeypatch) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and "1 of 7 images not written, the other 6 are" in err[0], err
    assert "p3.png: not a readable image" in err[0]
    written = sorted(p.name for p in out.iterdir())
    expected = sorted(f"p{i}{s}.png" for i in range(7) if i != 3 for s in ("", "_color"))
    assert written == expected  # and no temporary files


@pytest.mark.parametrize("hw", [(102, 136), (30, 40), (20, 150)])  # larger, smaller, mixed
def test_the_onnx_paths_resize_is_torchs_bilinear(hw: tuple[int, int]) -> None:
    """The ONNX backend resizes depth without torch: as `F.interpolate` does, also when
    shrinking (where PIL's bilinear, which it used before, differed by metres)."""
    depth = np.random.default_rng(0).uniform(0.5, 5.0, (51, 68)).astype(np.float32)
    small = torch.from_numpy(depth)[None, None]
    expected = F.interpolate(small, size=hw, mode="bilinear", align_corners=False)[0, 0].numpy()
    resized = _resize(depth, hw)
    assert resized.dtype == np.float32 and resized.shape == hw
    assert np.abs(resized - expected).max() < 1e-4  # metres
