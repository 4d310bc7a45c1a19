"""The evaluate stage: report layout, the baseline by hand, reproducible bytes, clean failures."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from e2e import REPO, write_h5

from pipeline.config import EvalConfig
from pipeline.evaluate import Evaluation, evaluate, example_rows, metrics_json
from pipeline.metrics import KEYS
from pipeline.model.fcrn import FCRN
from pipeline.model.io import save_model
from pipeline.plots import plot_predictions, plot_train_curves, read_train_log

RESIZE_HW, CROP_HW = (68, 85), (64, 80)  # crop window in the 240x320 frame: 226x301
INDEX = [5, 17, 42]
CFG = EvalConfig(protocol="eigen", batch_size=2, num_examples=2)  # a partial last batch
LOG_HEADER = "epoch,train_loss,lr,val_rel,val_rms,val_rms_log,val_log10,val_delta1,val_delta2,"
LOG_HEADER += "val_delta3\n"

# Baseline by hand. Train mean = 2 m (valid pixels: as many 1 m as 3 m). Test images:
# 0: 1 m everywhere (rel 1, squared error 1, ratio 2 fails every delta);
# 1: 2.2 m on the left half, missing elsewhere (rel 1/11, squared error 0.04, ratio 1.1);
# 2: 2 m everywhere (perfect). Valid pixels 2 : 1 : 2: laina weighs pixels, eigen and crop images
# (and average per-image rms).
BASELINE = {
    "laina": {"rel": (2 + 1 / 11) / 5, "rms": np.sqrt(2.04 / 5), "delta1": 3 / 5},
    "eigen": {"rel": (1 + 1 / 11) / 3, "rms": (1 + 0.2) / 3, "delta1": 2 / 3},
    "crop": {"rel": (1 + 1 / 11) / 3, "rms": (1 + 0.2) / 3, "delta1": 2 / 3},
}


def write_inputs(root: Path) -> Path:
    """test.h5, train.h5, a tiny random FCRN and a training log (no validation split) in root."""
    rng = np.random.default_rng(0)
    full = np.zeros((3, 480, 640), np.float32)
    full[0], full[1, :, :320], full[2] = 1.0, 2.2, 2.0
    write_h5(
        root / "test.h5",
        {"split": "test", "resize_hw": RESIZE_HW, "crop_hw": CROP_HW},
        rgb=rng.integers(0, 256, (3, *CROP_HW, 3), dtype=np.uint8),
        depth=np.full((3, *CROP_HW), 2.0, np.float32),
        depth_full=full,
        index=np.array(INDEX, np.int64),
    )
    train_depth = np.stack([np.full(RESIZE_HW, 1.0), np.full(RESIZE_HW, 3.0)]).astype(np.float32)
    train_depth[:, 0, :10] = 0.0  # missing pixels do not count
    write_h5(
        root / "train.h5",
        {"split": "train", "resize_hw": RESIZE_HW, "crop_hw": CROP_HW},
        rgb=rng.integers(0, 256, (2, *RESIZE_HW, 3), dtype=np.uint8),
        depth=train_depth,
        index=np.array([0, 1], np.int64),
    )
    torch.manual_seed(0)
    config = {"decoder": "upconv", "fast": True, "final_relu": True, "out_bias": 2.0}
    save_model(FCRN(**config), config, root / "fcrn.pt")
    (root / "train_log.csv").write_text(LOG_HEADER + "1,0.9,0.001,,,,,,,\n2,0.5,0.0005,,,,,,,\n")
    return root


@pytest.fixture(scope="module")
def inputs(module_tmp: Callable[[str], Path]) -> Path:
    return write_inputs(module_tmp("evaluate"))


@pytest.fixture(scope="module")
def result(inputs: Path) -> Evaluation:
    return evaluate(inputs / "fcrn.pt", inputs / "test.h5", inputs / "train.h5", CFG)


def test_metrics_layout(result: Evaluation):
    metrics = result.metrics
    assert list(metrics) == [
        *KEYS,
        "protocol",
        "laina",
        "eigen",
        "crop",
        "baseline",
        "num_test_images",
    ]
    assert metrics["protocol"] == "eigen"
    assert {k: metrics[k] for k in KEYS} == metrics["eigen"]
    assert all(list(metrics[p]) == list(KEYS) for p in ("laina", "eigen", "crop"))
    assert list(metrics["baseline"]) == ["mean_depth_m", "laina", "eigen", "crop"]
    assert metrics["num_test_images"] == 3
    assert all(np.isfinite(metrics[p][k]) for p in ("laina", "eigen", "crop") for k in KEYS)


def test_baseline_hand_computed(result: Evaluation):
    baseline = result.metrics["baseline"]
    assert baseline["mean_depth_m"] == 2.0
    for protocol, expected in BASELINE.items():
        assert {k: baseline[protocol][k] for k in expected} == pytest.approx(expected, rel=1e-6)


def test_examples_are_evenly_spaced_at_the_crop_window(result: Evaluation):
    assert [ex.index for ex in result.examples] == [5, 42]  # rows 0 and 2 of 3
    ex = result.examples[1]
    assert ex.rgb.shape == (*CROP_HW, 3)
    assert ex.gt.shape == ex.pred.shape == (226, 301)
    assert (ex.gt == 2.0).all()
    assert example_rows(80, 6) == [0, 16, 32, 47, 63, 79]
    assert example_rows(3, 6) == [0, 1, 2]
    assert example_rows(5, 1) == [0]


def test_training_log(inputs: Path, tmp_path: Path):
    log = read_train_log(inputs / "train_log.csv")
    assert log["epoch"].tolist() == [1, 2]
    assert np.isnan(log["val_rel"]).all()  # no validation split: empty cells
    (tmp_path / "log.csv").write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(ValueError, match=r"log\.csv: not a training log .*lr"):
        read_train_log(tmp_path / "log.csv")
    (tmp_path / "log.csv").write_text(LOG_HEADER)
    with pytest.raises(ValueError, match="no epochs"):
        read_train_log(tmp_path / "log.csv")


def run_stage(work: Path, model: str = "fcrn.pt") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(REPO / "stages" / "evaluate.py"), model, "test.h5", "train.h5"]
    cmd += ["train_log.csv", "reports"]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def work(inputs: Path) -> Path:
    """A stage working folder: the inputs plus the repo's params.yaml with CFG as eval, in
    native mode as the library runs in this process (the portable stage is compared with its
    committed bytes by tools/portable_check.py, in test_train_e2e.py)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["eval"] = CFG.model_dump()
    params["train"]["reproducible"] = "native"
    (inputs / "params.yaml").write_text(yaml.safe_dump(params))
    return inputs


def test_stage_gives_the_same_bytes_as_a_second_run(work: Path, result: Evaluation, tmp_path: Path):
    """The stage in a fresh process and the library in this one: byte-identical reports."""
    done = run_stage(work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 test images, eigen protocol" in done.stdout
    reports = work / "reports"
    assert (reports / "metrics.json").read_text() == metrics_json(result.metrics)
    plot_predictions(result.examples, tmp_path / "predictions")  # no suffix, like temp files
    plot_train_curves(read_train_log(work / "train_log.csv"), tmp_path / "curves")
    for ours, theirs in (("predictions", "predictions.png"), ("curves", "train_curves.png")):
        data = (tmp_path / ours).read_bytes()
        assert data.startswith(b"\x89PNG")
        assert data == (reports / theirs).read_bytes()


def test_stage_missing_model_fails_cleanly(work: Path, tmp_path: Path):
    for name in ("test.h5", "train.h5", "train_log.csv", "params.yaml"):
        (tmp_path / name).symlink_to(work / name)
    done = run_stage(tmp_path, model="missing.pt")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: missing.pt: no model file"), done.stderr
    assert not (tmp_path / "reports").exists()


def test_test_file_without_full_ground_truth(inputs: Path, tmp_path: Path):
    with h5py.File(inputs / "test.h5") as src, h5py.File(tmp_path / "test.h5", "w") as dst:
        for name in ("rgb", "index"):
            dst[name] = src[name][:]
        dst.attrs.update(src.attrs)
    with pytest.raises(ValueError, match=r"test\.h5: not a processed test file .*depth_full"):
        evaluate(inputs / "fcrn.pt", tmp_path / "test.h5", inputs / "train.h5", CFG)
