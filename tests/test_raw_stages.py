"""The `raw_frames` stage script as DVC runs it (a subprocess): its two trivial outcomes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from e2e import REPO

from pipeline.data.synthetic import generate


def _run(project: Path, train_source: str) -> subprocess.CompletedProcess[str]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["train_source"] = train_source
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    argv = ["data/raw", "data/downloads", "data/raw/raw_frames.csv"]
    cmd = [sys.executable, str(REPO / "stages" / "raw_frames.py"), *argv]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=120)


def test_labeled_training_writes_the_header_alone(tmp_path: Path) -> None:
    result = _run(tmp_path, "labeled")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/raw/raw_frames.csv").read_text() == "index,folder,depth,rgb\n"
    assert sorted(p.name for p in (tmp_path / "data/raw").iterdir()) == ["raw_frames.csv"]


def test_no_raw_archive_is_one_error_line(tmp_path: Path) -> None:
    """The synthetic source without the twin's archives (a labeled-only twin): nothing to train."""
    generate(tmp_path / "data/raw", num_images=4, seed=0, test_fraction=0.5, workers=1)
    result = _run(tmp_path, "raw")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: data/downloads/synthetic_raw: none of the 38 archives")
    assert not (tmp_path / "data/raw/raw_frames.csv").exists()
