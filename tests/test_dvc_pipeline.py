"""End to end: the real `dvc` in a real git repo runs the pipeline on small synthetic data."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from e2e import TINY, edited_params, make_project, run
from mirror import nyu_params, serving

from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.io import md5sum

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(module_tmp: Callable[[str], Path]) -> Path:
    """A fresh git + DVC repo holding a copy of the project with a tiny synthetic dataset."""
    return make_project(module_tmp("project") / "project", TINY)


def test_repro_runs_then_is_up_to_date(project: Path) -> None:
    first = run(["dvc", "repro", "validate"], project)
    for stage in ("params", "download", "preprocess", "validate"):
        assert f"Running stage '{stage}'" in first.stdout
    with h5py.File(project / "data/processed/train.h5") as train:
        assert train["rgb"].shape == (6, *TINY["data.preprocess.resize_hw"], 3)
    with h5py.File(project / "data/processed/test.h5") as test:
        assert test["rgb"].shape == (2, *TINY["data.preprocess.crop_hw"], 3)
        assert test["depth_full"].shape == (2, 480, 640)

    report = json.loads((project / "reports/validation.json").read_text())
    assert report["success"] is True

    second = run(["dvc", "repro", "validate"], project)
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout


def test_unrelated_param_reruns_nothing(project: Path) -> None:
    """Training and model knobs leave the data stages alone; a crop size re-runs preprocess."""
    run(["dvc", "repro", "validate"], project)
    data_stages = {"download", "preprocess", "validate"}
    with edited_params(project, {"train.seed": 123, "model.fast": False}):
        status = json.loads(
            run(["dvc", "status", "--json", "--with-deps", "validate"], project).stdout
        )
        assert not data_stages & set(status), status
        with edited_params(project, {"data.preprocess.crop_hw": [224, 304]}):
            status = json.loads(
                run(["dvc", "status", "--json", "--with-deps", "validate"], project).stdout
            )
            assert "preprocess" in status and "download" not in status, status


def test_same_params_reproduce_identical_files(project: Path, tmp_path: Path) -> None:
    """Regenerating from params.yaml alone gives byte-identical outputs (what dvc.lock records)."""
    run(["dvc", "repro", "validate"], project)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    shutil.rmtree(project / "data")
    run(["dvc", "repro", "--force", "validate"], project)
    assert yaml.safe_load((project / "dvc.lock").read_text()) == lock
    with h5py.File(project / "data/processed/test.h5") as test:
        assert np.isfinite(test["depth"][()]).all()


def test_corrupted_processed_file_stops_repro_at_validate(project: Path) -> None:
    """A processed file gone bad (here: 50 m depths) is refused before anything trains on it."""
    run(["dvc", "repro", "validate"], project)
    test_h5 = project / "data/processed/test.h5"
    pristine = test_h5.read_bytes()
    try:
        test_h5.unlink()  # DVC links outputs to its cache: never write through the link
        test_h5.write_bytes(pristine)
        with h5py.File(test_h5, "r+") as test:
            depth = test["depth"][1]
            test["depth"][1] = np.where(depth > 0, 50.0, 0.0).astype(np.float32)
            bad_index = int(test["index"][1])
        # --single-item: plain `repro` would notice the changed output and re-run preprocess.
        result = run(["dvc", "repro", "--single-item", "validate"], project, check=False)
        assert result.returncode != 0
        assert "Running stage 'validate'" in result.stdout
        output = result.stdout + result.stderr
        assert "depth_max" in output and str(bad_index) in output, output
        report = json.loads((project / "reports/validation.json").read_text())
        assert report["success"] is False
        failed = [f for f in report["failures"] if f["column"] == "depth_max"]
        assert failed and failed[0]["offending_indices"] == [bad_index]
    finally:
        test_h5.unlink()
        test_h5.write_bytes(pristine)


def test_data_failing_thresholds_stops_plain_repro(project: Path) -> None:
    """Tightened thresholds (validate.max_depth below the rooms' far walls) stop `dvc repro`."""
    with edited_params(project, {"validate.max_depth": 2.0}):
        result = run(["dvc", "repro", "validate"], project, check=False)
    assert result.returncode != 0
    assert "Running stage 'validate'" in result.stdout
    assert "Running stage 'preprocess'" not in result.stdout
    assert "depth_max" in result.stdout + result.stderr


def test_exp_run_with_nyu_source_downloads_over_http(project: Path, tmp_path: Path) -> None:
    """`dvc exp run -S data.source=nyu` fetches the files (here from a mirror on 127.0.0.1)."""
    run(["dvc", "repro", "validate"], project)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in (LABELED_NAME, SPLITS_NAME):
        shutil.copy(project / "data/raw" / name, mirror / name)
    with serving(mirror) as server:
        cmd = ["dvc", "exp", "run", "validate", "-n", "nyu-mirror"]
        for key, value in nyu_params(server.url, mirror).items():
            cmd += ["-S", f"{key}={value}"]
        with edited_params(project):  # the workspace run leaves its params behind
            result = run(cmd, project)
    assert "Running stage 'download'" in result.stdout
    assert sorted(server.requests) == sorted([LABELED_NAME, SPLITS_NAME])
    for name in (LABELED_NAME, SPLITS_NAME):
        expected = md5sum(mirror / name)
        assert md5sum(project / "data/downloads" / name) == expected  # kept outside DVC's outs
        assert md5sum(project / "data/raw" / name) == expected
    shown = run(["dvc", "exp", "show", "--json"], project).stdout
    assert "nyu-mirror" in shown
