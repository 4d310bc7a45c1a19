"""The `download` stage with `data.source: nyu`, run as DVC runs it (a subprocess), offline."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from e2e import REPO, closed_url

from pipeline.data.synthetic import generate
from pipeline.io import md5sum

NAMES = ("nyu_depth_v2_labeled.mat", "splits.mat")


@pytest.fixture(scope="module")
def source_files(module_tmp: Callable[[str], Path]) -> Path:
    """Stand-ins for the real files (the synthetic twin), with their MD5s in the params."""
    src = module_tmp("nyu")
    generate(src, num_images=4, seed=1, test_fraction=0.5, workers=1)
    return src


def offline_project(tmp_path: Path, source_files: Path) -> Path:
    base = closed_url()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = "nyu"
    params["data"]["nyu"] = {
        "labeled_url": f"{base}/{NAMES[0]}",
        "labeled_md5": md5sum(source_files / NAMES[0]),
        "splits_url": f"{base}/{NAMES[1]}",
        "splits_md5": md5sum(source_files / NAMES[1]),
        "retries": 2,
        "backoff_s": 0.01,
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def run_download_stage(cwd: Path) -> subprocess.CompletedProcess[str]:
    script = REPO / "stages" / "download.py"
    cmd = [sys.executable, str(script), "data/raw", "data/downloads"]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_offline_stage_says_where_to_put_the_file(tmp_path: Path, source_files: Path) -> None:
    project = offline_project(tmp_path, source_files)
    result = run_download_stage(project)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: could not download http://127.0.0.1:")
    assert md5sum(source_files / NAMES[0]) in error
    assert str((project / "data/downloads" / NAMES[0]).resolve()) in error
    assert not (project / "data/raw" / NAMES[0]).exists()


def test_hand_placed_copies_are_verified_and_used(tmp_path: Path, source_files: Path) -> None:
    project = offline_project(tmp_path, source_files)
    downloads = project / "data/downloads"
    downloads.mkdir(parents=True)
    for name in NAMES:
        (downloads / name).write_bytes((source_files / name).read_bytes())
    result = run_download_stage(project)
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert md5sum(project / "data/raw" / name) == md5sum(source_files / name)
