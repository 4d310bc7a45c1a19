"""`.ci/retrain`, the CI retraining job, run here as the workflow runs it on a push to the default
branch: against a local-folder DVC remote and a real `mlflow server` on 127.0.0.1.

Only the pull-request comment (CML, which needs GitHub) is not run; the report it would post is
checked. The project is a git + DVC copy of this working tree on the tiny config.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from e2e import REPO, copy_project, run, set_params
from mlflow import MlflowClient

if TYPE_CHECKING:
    from conftest import MlflowServer

pytestmark = pytest.mark.slow


def _lock_md5(project: Path, path: str) -> str:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    outs = [o for stage in lock["stages"].values() for o in stage.get("outs", [])]
    return next(o["md5"] for o in outs if o["path"] == path)


def test_ci_retrain_pushes_registers_and_reports(
    reproduced: Path,
    tmp_path: Path,
    mlflow_server_factory: Callable[[str], MlflowServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # main: the pipeline reproduced, committed and pushed to the team's DVC remote.
    origin = copy_project(reproduced, tmp_path / "origin")
    (origin / ".ci").mkdir()
    shutil.copy2(REPO / ".ci/retrain", origin / ".ci/retrain")
    remote = tmp_path / "dvc-remote"
    run(["dvc", "remote", "add", "-d", "team", str(remote)], origin)
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "main: the CI job and the team's remote"], origin)
    run(["dvc", "push"], origin)
    base = run(["git", "rev-parse", "HEAD"], origin).stdout.strip()
    # A push that changes a training param: the job must retrain, publish and report.
    set_params(origin / "params.yaml", {"train.lr": 0.001})
    run(["git", "commit", "-qam", "lr 0.001"], origin)
    runner = tmp_path / "runner"  # the job's checkout
    run(["git", "clone", "-q", str(origin), str(runner)], tmp_path)
    branch = run(["git", "symbolic-ref", "--short", "HEAD"], runner).stdout.strip()
    commit = run(["git", "rev-parse", "HEAD"], runner).stdout.strip()

    server = mlflow_server_factory(f"sqlite:///{tmp_path / 'team.db'}")
    summary = tmp_path / "summary.md"
    for key, value in {
        "MLFLOW_TRACKING_URI": server.url,
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF_NAME": branch,
        "DEFAULT_BRANCH": branch,
        "BASE_REV": base,
        "PR_COMMENT": "false",
    }.items():
        monkeypatch.setenv(key, value)
    job = run([".ci/retrain", "report.md"], runner)
    out = job.stdout + job.stderr

    # The data came from the remote; training ran on it; the new model is on the remote.
    assert "Running stage 'download'" not in out and "Running stage 'train'" in out, out
    model_md5 = _lock_md5(runner, "models/fcrn.pt")
    assert model_md5 != _lock_md5(origin, "models/fcrn.pt")
    assert (remote / "files/md5" / model_md5[:2] / model_md5[2:]).is_file()

    # Registered on the team server as a candidate, with the commit it was trained at.
    client = MlflowClient(server.url)
    candidate = client.get_model_version_by_alias("fcrn-nyu", "candidate")
    assert candidate.tags["git_commit"] == commit
    assert candidate.tags["model_md5"] == model_md5

    # The report: the metrics and params diff against main, the registration, both pictures.
    report = (runner / "report.md").read_text()
    assert f"compared with {base}" in report
    # dvc lists the changed metrics files in no fixed order (train_speed.json changes every run).
    metrics_table = re.compile(
        r"^\| Path +\| Metric +\|.*\n(?:\|.*\n)*?\| reports/metrics\.json +\| rel ", re.M
    )
    assert metrics_table.search(report), report
    assert re.search(r"^\| params\.yaml +\| train\.lr +\| 0\.0003 +\| 0\.001 +\|", report, re.M)
    assert "fcrn-nyu v1 (champion: no champion yet)" in report
    assert "![predictions](reports/predictions.png)" in report
    assert "![training curves](reports/train_curves.png)" in report
    job_summary = summary.read_text()
    assert metrics_table.search(job_summary) and "pushed to the DVC remote" in job_summary
