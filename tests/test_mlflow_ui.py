"""What users do: two `dvc exp run -S` experiments of the real pipeline (tiny config, through
the `train` stage), then the MLflow UI in a real browser.

Headless Chromium (Debian's `chromium`, installed by .ci/run) renders the experiment's page from
the test server as `pipeline.tracking.ui_url` links it: the rendered DOM must list both training
runs with their Source, and none of the GenAI overview. (MLflow 3.17's UI picks that page by its
GenAI / Model training switch, GenAI in a new browser, not by the experiment's kind tag: the
link's `workflowType=machine_learning` sets the switch.)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2e import REPO, copy_project, run
from mlflow import MlflowClient

from pipeline.tracking import ui_url

if TYPE_CHECKING:
    from conftest import MlflowServer

pytestmark = pytest.mark.slow

SCREENSHOT = REPO / "docs/mlflow-runs.png"  # refreshed with FCRN_UPDATE_SCREENSHOT=1
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
    reproduced: Path, mlflow_server: MlflowServer, mlflow_env: dict[str, str], tmp_path: Path
) -> None:
    experiment = f"test-ui-{secrets.token_hex(4)}"
    names = {"mlflow.experiment": experiment, "mlflow.registered_model": f"fcrn-{experiment}"}
    root = copy_project(reproduced, tmp_path / "project", names)  # the data stages done
    for name, lr in EXPERIMENTS.items():
        run(["dvc", "exp", "run", "-n", name, "-S", f"train.lr={lr}", "train"], root)

    client = MlflowClient(mlflow_server.url)
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([exp_id])
    assert {r.info.run_name: r.data.params["train.lr"] for r in runs} == {
        name: str(lr) for name, lr in EXPERIMENTS.items()
    }
    assert {r.data.tags["dvc.exp_name"] for r in runs} == set(EXPERIMENTS)
    head = run(["git", "rev-parse", "HEAD"], root).stdout.strip()
    assert {r.data.tags["mlflow.source.git.commit"] for r in runs} == {head}
    # Live per-epoch tracking of the real training loop, both epochs of each run.
    for r in runs:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "train_loss")]
        assert sorted(steps) == [1, 2]

    experiment_tags = client.get_experiment(exp_id).tags
    assert experiment_tags["mlflow.experimentKind"] == "custom_model_development"
    assert {r.data.tags["mlflow.source.name"] for r in runs} == {"stages/train.py"}

    page = ui_url(mlflow_server.url, exp_id)
    assert page == f"{mlflow_server.url}/#/experiments/{exp_id}?workflowType=machine_learning"
    window = "--window-size=1600,1000"  # the runs table renders only the columns in view
    shot = tmp_path / "mlflow-runs.png"  # one browser run: the DOM and a picture of the page
    dom = _browse(page, tmp_path / "profile", window, "--dump-dom", f"--screenshot={shot}").stdout
    for name in EXPERIMENTS:
        assert name in dom, f"{name} not in the rendered experiment page"
    assert "train.py" in dom  # the Source column
    for genai in ("Token Usage", "Tokens per Trace", "Latency"):  # the GenAI overview's panels
        assert genai not in dom, f"the GenAI overview rendered ({genai!r})"
    assert shot.stat().st_size > 10_000
    if os.environ.get("FCRN_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
