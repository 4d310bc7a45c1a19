"""The team set-up end to end on the session's team stack (real PostgreSQL, SeaweedFS S3 and a
basic-auth `mlflow server` on 127.0.0.1): CI retrains through S3 and the server as the `ci`
account, a teammate's clone with read-only credentials pulls, predicts with and serves
`@champion`; what the read-only account and a missing login get; no password anywhere it could
leak."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from e2e import REPO, TINY, copy_project, make_project, mlflow_serving, run
from mlflow import MlflowClient
from PIL import Image

from pipeline.io import md5sum
from pipeline.team.accounts import provision
from pipeline.team.stack import Stack

pytestmark = pytest.mark.slow
LOGIN = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID")
LR = {"train.lr": 0.001}  # not the reproduced project's: CI has a model to train


@contextmanager
def account(stack: Stack, name: str | None) -> Iterator[dict[str, str]]:
    """The environment of a client logged in as ``name`` (None: no login) for the block."""
    with pytest.MonkeyPatch.context() as mp:
        for key in (*LOGIN, "AWS_SECRET_ACCESS_KEY"):
            mp.delenv(key, raising=False)
        env = stack.client_env(name) if name else {"MLFLOW_TRACKING_URI": stack.mlflow_url}
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


def team_project(
    stack: Stack, root: Path, tag: str, changes: dict[str, object], base: Path | None = None
) -> Path:
    """A tiny git + DVC project whose experiment and model the admin made for `ci`, with the
    stack's S3 bucket (under its own prefix) as the default DVC remote, committed; a copy of the
    reproduced project ``base`` when given (its data stages done), else made from scratch."""
    names = {"mlflow.experiment": f"team-{tag}", "mlflow.registered_model": f"fcrn-{tag}"}
    provision(stack.mlflow_url, stack.admin_password, *names.values())
    if base is None:
        project = make_project(root, {**TINY, **names, **changes})
    else:
        project = copy_project(base, root, {**names, **changes})
    (project / ".ci").mkdir()
    shutil.copy2(REPO / ".ci/retrain", project / ".ci/retrain")
    run(["dvc", "remote", "add", "-d", "team", f"s3://dvc/{tag}"], project)
    run(["dvc", "remote", "modify", "team", "endpointurl", stack.s3_url], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "team remote"], project)
    return project


def lock_outs(project: Path) -> dict[str, str]:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for s in lock["stages"].values() for o in s.get("outs", [])}


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if "error:" in line]


@pytest.fixture(scope="module")
def retrained(
    team_stack: Stack, reproduced: Path, module_tmp: Callable[[str], Path]
) -> dict[str, object]:
    """CI's job on a push to main that changes a training param, so that a teammate's clone can
    pull the model."""
    root = module_tmp("team")
    runner = team_project(team_stack, root / "runner", "roundtrip", LR, base=reproduced)
    return {"runner": runner, "root": root, "log": retrain_as_ci(team_stack, runner, root)}


def retrain_as_ci(stack: Stack, runner: Path, root: Path) -> str:
    """`.ci/retrain` on a push to the runner's branch as the `ci` account, then dvc.lock
    committed (what the team's merge does); the job's output. Its summary goes to root."""
    branch = run(["git", "symbolic-ref", "--short", "HEAD"], runner).stdout.strip()
    ci_env = {
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF_NAME": branch,
        "DEFAULT_BRANCH": branch,
        "BASE_REV": "HEAD",
        "PR_COMMENT": "false",
        "GITHUB_STEP_SUMMARY": str(root / "summary.md"),
    }
    with account(stack, "ci"), pytest.MonkeyPatch.context() as mp:
        for key, value in ci_env.items():
            mp.setenv(key, value)
        job = run([".ci/retrain", "report.md"], runner)
    run(["git", "add", "-A"], runner)
    run(["git", "commit", "-qm", "retrained"], runner)
    return job.stdout + job.stderr


def test_ci_retrains_through_s3_and_a_reader_predicts_with_champion(
    team_stack: Stack, retrained: dict[str, object]
) -> None:
    runner, root = retrained["runner"], retrained["root"]
    assert "Running stage 'train'" in retrained["log"]
    assert "pushed to the DVC remote" in (runner / "report.md").read_text()
    # Every output the lock records is on the S3 remote, and the reader's clone pulls it.
    clone = root / "teammate"
    run(["git", "clone", "-q", str(runner), str(clone)], root)
    image = root / "room.png"
    Image.new("RGB", (80, 64), "teal").save(image)
    with account(team_stack, "reader"):
        cloud = run(["dvc", "status", "--cloud"], clone).stdout  # "deleted": only on the remote
        assert "deleted:            models/fcrn.pt" in cloud and "new:" not in cloud, cloud
        run(["dvc", "pull"], clone)
        for path, md5 in lock_outs(clone).items():
            if (clone / path).is_file():
                assert md5sum(clone / path) == md5, path
        assert (clone / "models/fcrn.pt").is_file()
        client = MlflowClient(team_stack.mlflow_url)
        champion = client.get_model_version_by_alias("fcrn-roundtrip", "champion")
        assert champion.tags["model_md5"] == md5sum(clone / "models/fcrn.pt")
        out = run(
            [str(Path(sys.executable).parent / "fcrn-predict"), str(image), "--out",
             str(root / "depth"), "--model", "models:/fcrn-roundtrip@champion"],
            clone,
        )  # fmt: skip
        # Serving as the reader: `mlflow models serve` fetches @champion through the server.
        with mlflow_serving("models:/fcrn-roundtrip@champion", root / "serve.log") as url:
            x = np.zeros((1, 3, 48, 64), np.float32)  # the pt2 program takes H >= 33
            answer = requests.post(f"{url}/invocations", json={"inputs": x.tolist()}, timeout=60)
    assert (root / "depth/room.png").is_file() or "room" in out.stdout
    assert answer.status_code == 200, answer.text
    assert np.asarray(answer.json()["predictions"]).shape == (1, 48, 64)


def as_stage(call: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``call`` (on ``client``, an MlflowClient) under the stages' error contract."""
    code = (
        "from mlflow import MlflowClient\nfrom pipeline.stage import run_stage\n"
        f"client = MlflowClient()\nrun_stage(lambda: {call})"
    )
    return run([sys.executable, "-c", code], cwd, check=False)


def test_reader_may_not_train_register_or_move_champion(
    team_stack: Stack, retrained: dict[str, object], tmp_path: Path
) -> None:
    clone = tmp_path / "reader"
    run(["git", "clone", "-q", str(retrained["runner"]), str(clone)], tmp_path)
    with account(team_stack, "reader"):
        run(["dvc", "pull"], clone)
        trained = run(["dvc", "repro", "-f", "-s", "train"], clone, check=False)
        registered = as_stage(
            "client.create_model_version('fcrn-roundtrip', 'models:/fcrn-roundtrip/1')", clone
        )
        moved = as_stage(
            "client.set_registered_model_alias('fcrn-roundtrip', 'champion', '1')", clone
        )
    assert trained.returncode != 0
    lines = error_lines(trained)
    assert any("HTTP 403" in line and "create runs" in line for line in lines), lines
    assert "Traceback" not in trained.stderr and "bug in the pipeline" not in trained.stderr
    for result, what in ((registered, "register a model version"), (moved, "alias")):
        assert result.returncode == 1
        (line,) = [x for x in result.stderr.splitlines() if x.strip()]
        assert line.startswith("error:") and "HTTP 403" in line and what in line, line
        assert "user 'reader'" in line


def test_no_login_names_the_variables(team_stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "room.png"
    Image.new("RGB", (80, 64), "teal").save(image)
    predict = [str(Path(sys.executable).parent / "fcrn-predict"), str(image), "--out",
               str(tmp_path / "depth"), "--model", "models:/fcrn-roundtrip@champion"]  # fmt: skip
    with account(team_stack, None):
        result = run(predict, tmp_path, check=False)
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("error:") and "HTTP 401" in line
    assert "MLFLOW_TRACKING_USERNAME" in line and "MLFLOW_TRACKING_PASSWORD" in line
    with account(team_stack, "reader") as env, pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_PASSWORD", env["MLFLOW_TRACKING_PASSWORD"] + "x")
        wrong = run(predict, tmp_path, check=False)
    assert wrong.returncode == 1 and "'reader' or its password is wrong" in wrong.stderr


def test_no_password_in_logs_reports_or_mlflow(
    team_stack: Stack, retrained: dict[str, object]
) -> None:
    runner = retrained["runner"]
    secrets = [team_stack.admin_password, team_stack.secrets["postgres"]]
    secrets += list(team_stack.secrets["mlflow"].values())
    secrets += [secret for _, secret in team_stack.secrets["s3"].values()]
    texts = {"retrain log": retrained["log"]}
    texts |= {str(log): log.read_text() for log in retrained["root"].glob("*.log")}  # serving
    for folder in (runner / "reports", team_stack.root / "logs"):
        for path in folder.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    texts["report.md"] = (runner / "report.md").read_text()
    texts["job summary"] = (retrained["root"] / "summary.md").read_text()
    with account(team_stack, "ci"):
        client = MlflowClient(team_stack.mlflow_url)
        exp = client.get_experiment_by_name("team-roundtrip")
        for r in client.search_runs([exp.experiment_id]):
            texts[f"run {r.info.run_id}"] = repr((r.data.params, r.data.tags, r.data.metrics))
        for v in client.search_model_versions("name = 'fcrn-roundtrip'"):
            texts[f"version {v.version}"] = repr((v.tags, v.description, v.source))
    assert len(texts) > 10
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a password is in {where}"
