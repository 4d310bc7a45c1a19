"""The validate stage: clean processed data passes, each kind of corruption fails by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from e2e import REPO, write_h5

from pipeline.config import ValidateConfig
from pipeline.data.validation import (
    ProcessedDataError,
    render_html,
    summarize,
    validate_processed,
    write_report,
)

NUM_IMAGES = 40
TRAIN_IDX = np.arange(0, NUM_IMAGES, 3, dtype=np.int64)  # 14 images
TEST_IDX = np.setdiff1d(np.arange(NUM_IMAGES), TRAIN_IDX)  # 26 images
EXPECTED = {"train": TRAIN_IDX, "test": TEST_IDX}
CFG = ValidateConfig(
    min_depth=0.0,
    max_depth=10.0,
    mostly=1.0,
    min_valid_fraction=0.5,
    raw_min_valid_fraction=0.2,
    max_reported_indices=20,
)


def write_processed(path: Path, split: str, indices: np.ndarray, rgb_hw=(12, 16), seed=0) -> Path:
    """A small processed file in the preprocess layout with plausible random content."""
    rng = np.random.default_rng(seed)
    n, depth_hw = len(indices), (12, 16)
    depth = rng.uniform(0.5, 9.5, (n, *depth_hw)).astype(np.float32)
    depth[:, 0, :4] = 0  # a few missing pixels, as in real Kinect depth
    rgb = rng.integers(0, 256, (n, *rgb_hw, 3), dtype=np.uint8)
    extra = {}
    if split == "test":
        extra["depth_full"] = rng.uniform(0.5, 9.5, (n, 24, 32)).astype(np.float32)
    index = np.asarray(indices, np.int64)
    return write_h5(path, {"split": split}, rgb=rgb, depth=depth, index=index, **extra)


@pytest.fixture(scope="module")
def clean_dir(module_tmp: Callable[[str], Path]) -> Path:
    root = module_tmp("processed")
    write_processed(root / "train.h5", "train", TRAIN_IDX, seed=1)
    write_processed(root / "test.h5", "test", TEST_IDX, seed=2)
    return root


@pytest.fixture
def processed(clean_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the clean pair that a test may corrupt."""
    for name in ("train.h5", "test.h5"):
        shutil.copy(clean_dir / name, tmp_path / name)
    return tmp_path


def run(root: Path, cfg: ValidateConfig = CFG) -> dict:
    return validate_processed(root / "train.h5", root / "test.h5", EXPECTED, cfg, progress=False)


def edit(path: Path, fn: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "r+") as h5:
        fn(h5)


def failed(report: dict) -> dict[tuple[str, str, str | None], dict]:
    return {(f["suite"], f["expectation"], f["column"]): f for f in report["failures"]}


def test_clean_data_passes(processed: Path, capfd: pytest.CaptureFixture[str]) -> None:
    report = run(processed)
    assert "Calculating Metrics" not in capfd.readouterr().err  # GX progress bars are off
    assert report["success"], summarize(report)
    assert report["failures"] == []
    assert all(suite["success"] for suite in report["suites"].values())
    stats = report["statistics"]
    assert stats["train"]["images"] == len(TRAIN_IDX)
    assert stats["test"]["images"] == len(TEST_IDX)
    assert 0.5 <= stats["train"]["depth"]["min"] <= stats["train"]["depth"]["max"] <= 9.5
    assert stats["test"]["depth_full"]["nan_pixels"] == 0
    assert stats["train"]["rgb_hw"] == [[12, 16]]
    assert summarize(report).startswith("validation PASSED")
    json.dumps(report)  # plain JSON, no numpy or NaN left


def _set(name: str, where: tuple, value: float) -> Callable[[h5py.File], None]:
    def fn(h5: h5py.File) -> None:
        data = h5[name][...]
        data[where] = value
        h5[name][...] = data

    return fn


# (split file, edit, failing suite, expectation, column, row whose image index must be reported)
CORRUPTIONS = {
    "nan_depth": (
        "train", _set("depth", (3, 2, 2), np.nan),
        "train", "expect_column_values_to_be_between", "depth_nan", 3,
    ),
    "inf_depth_full": (
        "test", _set("depth_full", (4, 1, 1), np.inf),
        "test", "expect_column_values_to_be_between", "depth_full_inf", 4,
    ),
    "blank_rgb": (
        "test", _set("rgb", (5,), 128),
        "test", "expect_column_values_to_be_between", "rgb_std_max", 5,
    ),
    "depth_50m": (
        "train", _set("depth", (7, 5, 5), 50.0),
        "train", "expect_column_values_to_be_between", "depth_max", 7,
    ),
    "negative_depth": (
        "test", _set("depth", (0, 5, 5), -1.0),
        "test", "expect_column_values_to_be_between", "depth_min", 0,
    ),
    "mostly_missing_depth": (
        "train", _set("depth", (2, slice(0, 9)), 0.0),
        "train", "expect_column_values_to_be_between", "depth_valid_fraction", 2,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corruption_fails_by_name(processed: Path, case: str) -> None:
    file_split, fn, suite, expectation, column, row = CORRUPTIONS[case]
    edit(processed / f"{file_split}.h5", fn)
    report = run(processed)
    assert not report["success"]
    failures = failed(report)
    assert list(failures) == [(suite, expectation, column)]
    image = int(EXPECTED[file_split][row])
    assert failures[suite, expectation, column]["offending_indices"] == [image]
    summary = summarize(report)
    assert f"{expectation}({column})" in summary
    assert f"first 0-based image indices [{image}]" in summary


def test_train_test_overlap(processed: Path) -> None:
    leaked = int(TRAIN_IDX[0])
    edit(processed / "test.h5", _set("index", (0,), leaked))
    failures = failed(run(processed))
    unique = failures["train+test", "expect_column_values_to_be_unique", "index"]
    assert unique["offending_indices"] == [leaked]
    # the leaked image is also not a test image according to splits.mat
    assert failures["test", "expect_column_values_to_be_in_set", "index"]["offending_indices"] == [
        leaked
    ]


def test_wrong_row_count(processed: Path) -> None:
    write_processed(processed / "train.h5", "train", TRAIN_IDX[:-1])
    report = run(processed)
    failure = failed(report)["train", "expect_table_row_count_to_equal", None]
    assert failure["observed_value"] == len(TRAIN_IDX) - 1
    assert "expect_table_row_count_to_equal" in summarize(report)
    assert len(report["failures"]) == 1


def test_shape_mismatch(processed: Path) -> None:
    write_processed(processed / "test.h5", "test", TEST_IDX, rgb_hw=(12, 15))
    failures = failed(run(processed))
    assert list(failures) == [("test", "expect_column_pair_values_to_be_equal", "rgb_w/depth_w")]


def test_mostly_and_cap(processed: Path) -> None:
    edit(processed / "train.h5", _set("depth", (slice(0, 5), 3, 3), 50.0))
    lenient = run(processed, CFG.model_copy(update={"mostly": 0.6}))
    assert lenient["success"], summarize(lenient)
    strict = run(processed, CFG.model_copy(update={"max_reported_indices": 2}))
    failure = failed(strict)["train", "expect_column_values_to_be_between", "depth_max"]
    assert failure["unexpected_count"] == 5
    assert failure["offending_indices"] == [int(i) for i in TRAIN_IDX[:2]]


def _retype(name: str, dtype: type, rows: slice = slice(None)) -> Callable[[h5py.File], None]:
    def fn(h5: h5py.File) -> None:
        data = h5[name][rows].astype(dtype)
        del h5[name]
        h5[name] = data

    return fn


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: (p / "train.h5").unlink(), "processed file not found"),
        (lambda p: (p / "train.h5").write_bytes(b"not hdf5"), "cannot read processed file"),
        (lambda p: edit(p / "train.h5", lambda h5: h5.__delitem__("depth")), "missing dataset"),
        (lambda p: edit(p / "test.h5", lambda h5: h5.__delitem__("depth_full")), "depth_full"),
        (lambda p: edit(p / "train.h5", lambda h5: h5.attrs.modify("split", "test")), "split="),
        (lambda p: edit(p / "test.h5", _retype("depth", np.float64)), "expected float32"),
        (lambda p: edit(p / "test.h5", _retype("index", np.float64)), "expected an integer"),
        (lambda p: edit(p / "train.h5", _retype("index", np.int64, slice(1, None))), "disagree"),
    ],
    ids=[
        "missing",
        "not_hdf5",
        "no_depth",
        "no_depth_full",
        "wrong_split_attr",
        "depth_float64",
        "index_float",
        "short_index",
    ],
)
def test_unreadable_file_names_it(processed: Path, setup: Callable, message: str) -> None:
    setup(processed)
    with pytest.raises(ProcessedDataError, match=message) as info:
        run(processed)
    assert str(processed) in str(info.value)


def test_report_files(processed: Path, tmp_path: Path) -> None:
    edit(processed / "train.h5", _set("depth", (3, 2, 2), np.nan))
    report = run(processed)
    report["files"]["train"] = "<script>alert(1)</script>"
    write_report(report, tmp_path / "out" / "validation.json", tmp_path / "out" / "validation.html")
    assert json.loads((tmp_path / "out" / "validation.json").read_text()) == report
    page = (tmp_path / "out" / "validation.html").read_text()
    assert "&lt;script&gt;" in page and "<script" not in page
    assert "href=" not in page and "src=" not in page  # readable offline: nothing external
    assert "depth_nan" in page and "FAIL" in page
    assert page == render_html(report)


@pytest.mark.slow  # the stage in a subprocess (Great Expectations' import)
def test_stage_script(clean_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "data" / "raw").mkdir(parents=True)
    shutil.copytree(clean_dir, work / "data" / "processed")
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    splits = {
        "trainNdxs": (TRAIN_IDX + 1).astype(np.uint16)[:, None],
        "testNdxs": (TEST_IDX + 1).astype(np.uint16)[:, None],
    }
    scipy.io.savemat(work / "data" / "raw" / "splits.mat", splits)
    cmd = [
        sys.executable,
        str(REPO / "stages" / "validate.py"),
        "data/processed",
        "data/raw/splits.mat",
        "reports/validation.json",
        "reports/validation.html",
    ]
    ok = subprocess.run(cmd, cwd=work, text=True, capture_output=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "validation PASSED" in ok.stdout
    assert json.loads((work / "reports" / "validation.json").read_text())["success"]

    edit(work / "data" / "processed" / "test.h5", _set("depth", (1, 0, 5), np.nan))
    bad = subprocess.run(cmd, cwd=work, text=True, capture_output=True)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "validation FAILED" in bad.stdout
    assert bad.stderr.splitlines()[-1].startswith("error: data/processed failed validation")
    assert "expect_column_values_to_be_between(depth_nan)" in bad.stdout
    assert f"first 0-based image indices [{TEST_IDX[1]}]" in bad.stdout
    report = json.loads((work / "reports" / "validation.json").read_text())
    assert [(f["suite"], f["column"]) for f in report["failures"]] == [("test", "depth_nan")]
    assert (work / "reports" / "validation.html").is_file()

    (work / "data" / "processed" / "train.h5").unlink()
    missing = subprocess.run(cmd, cwd=work, text=True, capture_output=True)
    assert missing.returncode == 1
    assert "train.h5: processed file not found" in missing.stderr
