"""What users do: two `dvc exp run -S` experiments, then the MLflow UI in a real browser.

Headless Chromium (Debian's `chromium`, installed by .ci/run) renders the UI's runs page from the
test server; the rendered DOM must name both runs. The stage is a stand-in for `train` that
tracks through `pipeline.tracking` exactly as the real one does, in seconds instead of minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from mlflow import MlflowClient

if TYPE_CHECKING:
    from conftest import MlflowServer, TinyProject

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs/mlflow-runs.png"  # refreshed with FCRN_UPDATE_SCREENSHOT=1
STAND_IN = """\
import json
from pathlib import Path

import yaml

from pipeline.config import parse_params
from pipeline.tracking import training_run

raw = yaml.safe_load(Path("params.yaml").read_text())
params = parse_params(raw)
lr = params.train.lr
state, data = Path("checkpoints/mlflow_run.json"), {"train": Path("data/processed/train.h5")}
with training_run(raw, params.mlflow, state, data, {"device": "cpu"}) as run:
    for epoch in range(1, 6):
        row = {"train_loss": 1 / (1 + epoch * lr * 1e4), "lr": lr, "val_rel": 0.3 + 0.2 / epoch}
        run.log_epoch(row, step=epoch)
Path("train_done.json").write_text(json.dumps({"train_loss": row["train_loss"]}))
"""
DVC_YAML = """\
stages:
  train:
    cmd: python train_stand_in.py
    deps: [train_stand_in.py, data/processed/train.h5]
    params: [train.lr]
    metrics:
      - train_done.json:
          cache: false
"""
EXPERIMENTS = {"lr-small": 0.0001, "lr-large": 0.001}


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _browse(url: str, profile: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium, offline and without a sandbox (root in containers), given 15 s of
    virtual time: the UI fetches its data after the first paint."""
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
        *options, url,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def test_two_dvc_experiments_show_as_two_runs_in_the_mlflow_ui(
    tiny_project: Callable[[str], TinyProject],
    mlflow_server: MlflowServer,
    mlflow_env: dict[str, str],
    tmp_path: Path,
) -> None:
    project = tiny_project("ui")
    root = project.root
    (root / "train_stand_in.py").write_text(STAND_IN)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / ".gitignore").write_text("/checkpoints/\n")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }

    def run(*cmd: str) -> None:
        result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{cmd}:\n{result.stdout}\n{result.stderr}"

    run("dvc", "init", "-q")
    run("git", "add", "-A")
    run("git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "dvc")
    for name, lr in EXPERIMENTS.items():
        run("dvc", "exp", "run", "-n", name, "-S", f"train.lr={lr}")

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(project.experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_name: r.data.params["train.lr"] for r in runs} == {
        name: str(lr) for name, lr in EXPERIMENTS.items()
    }
    assert {r.data.tags["dvc.exp_name"] for r in runs} == set(EXPERIMENTS)
    assert {r.data.tags["git.dirty"] for r in runs} == {"False"}  # `-S` edits only params.yaml

    runs_page = f"{mlflow_server.url}/#/experiments/{experiment.experiment_id}/runs"
    dom = _browse(runs_page, tmp_path / "profile", "--dump-dom").stdout
    for name in EXPERIMENTS:
        assert name in dom, f"{name} not in the rendered runs page"

    ids = json.dumps([r.info.run_id for r in runs])
    compare = (
        f"{mlflow_server.url}/#/compare-runs?runs={quote(ids)}"
        f"&experiments={quote(json.dumps([experiment.experiment_id]))}"
    )
    shot = tmp_path / "mlflow-runs.png"
    _browse(compare, tmp_path / "profile", "--window-size=1600,1000", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000
    if os.environ.get("FCRN_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
