"""Faults and load on the session's team stack: the object store killed in the middle of
`dvc push`, the tracking server restarted during training, four queued experiments at once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from e2e import env, run, run_queue
from mlflow import MlflowClient
from test_team_stack import account, error_lines, team_project

from pipeline.team.stack import Stack

pytestmark = pytest.mark.slow


def _s3(stack: Stack) -> Any:  # boto3 generates its client class
    key, secret = stack.secrets["s3"]["admin"]
    return boto3.client(
        "s3", endpoint_url=stack.s3_url, aws_access_key_id=key,
        aws_secret_access_key=secret, region_name="us-east-1",
    )  # fmt: skip


def _remote_objects(stack: Stack, prefix: str) -> dict[str, bytes]:
    s3, objects = _s3(stack), {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="dvc", Prefix=prefix):
        for item in page.get("Contents", []):
            objects[item["Key"]] = s3.get_object(Bucket="dvc", Key=item["Key"])["Body"].read()
    return objects


def test_object_store_killed_during_push(team_stack: Stack, tmp_path: Path) -> None:
    project = team_project(team_stack, tmp_path / "p", "pushfault", {})
    blobs = project / "blobs"  # data/ is git-ignored: no .dvc file there
    blobs.mkdir(parents=True)
    for i in range(24):  # 24 x 8 MB: a push of seconds, long enough to cut
        (blobs / f"{i:02d}.bin").write_bytes(os.urandom(8 << 20))
    run(["dvc", "add", "blobs"], project)
    with account(team_stack, "ci"):
        push = subprocess.Popen(
            ["dvc", "push"], cwd=project, env=env(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not _remote_objects(team_stack, "pushfault/"):
            assert time.monotonic() < deadline and push.poll() is None, "push never started"
            time.sleep(0.2)
        team_stack.weed().kill()
        out, _ = push.communicate(timeout=600)
        print(f"push cut: {[line for line in out.splitlines() if 'failed to push' in line]}")
        team_stack.start_s3()
        assert push.returncode != 0, out
        # DVC's own report: a line per file it could not send, then one summary line.
        *files, summary = [line for line in out.splitlines() if line.startswith("ERROR")]
        assert summary.startswith("ERROR: failed to push data to the cloud - "), out
        assert all(f"Could not connect to the endpoint URL: \"{team_stack.s3_url}" in line
                   for line in files), out  # fmt: skip
        assert "Traceback" not in out, out
        again = run(["dvc", "push"], project)
    assert again.returncode == 0
    objects = _remote_objects(team_stack, "pushfault/files/md5/")
    # 24 blobs and the directory listing, each under its own md5.
    assert len(objects) == 25, sorted(objects)
    for key, body in objects.items():
        assert key.split("/")[-2] + key.split("/")[-1].removesuffix(".dir") == (
            hashlib.md5(body).hexdigest()
        ), key


def _epochs(client: MlflowClient, experiment: str, key: str = "train_loss") -> list[list[int]]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    return [sorted(m.step for m in client.get_metric_history(r.info.run_id, key)) for r in runs]


def test_tracking_server_restarted_during_training(team_stack: Stack, tmp_path: Path) -> None:
    epochs = 4
    changes = {"train.epochs": epochs, "data.synthetic.num_images": 12}
    project = team_project(team_stack, tmp_path / "p", "restart", changes)
    with account(team_stack, "ci"):
        client = MlflowClient(team_stack.mlflow_url)
        repro = subprocess.Popen(
            ["dvc", "repro"], cwd=project, env=env(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while not any(_epochs(client, "team-restart")):
            assert time.monotonic() < deadline and repro.poll() is None, repro.stdout.read()
            time.sleep(0.5)
        team_stack.mlflow().stop()
        team_stack.start_mlflow(None)
        out, _ = repro.communicate(timeout=900)
        if repro.returncode != 0:  # the server was down when a stage needed it: one line
            lines = error_lines(subprocess.CompletedProcess([], 1, out, ""))
            assert len(lines) == 1 and "MLflow" in lines[0], out
            run(["dvc", "repro"], project)  # resumes: only what is missing runs
        assert _epochs(client, "team-restart") == [list(range(1, epochs + 1))], out


@pytest.mark.timeout(2400)  # four trainings and registrations at once on 2 cores
def test_four_queued_experiments_against_the_server(
    team_stack: Stack, reproduced: Path, tmp_path: Path
) -> None:
    lrs = {"q1": 0.0002, "q2": 0.001, "q3": 0.003, "q4": 0.0001}  # none the default: all train
    project = team_project(team_stack, tmp_path / "p", "queue", {}, base=reproduced)
    with account(team_stack, "ci"):
        run(["dvc", "repro", "validate"], project)
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", "data"], project)
        for name, lr in lrs.items():
            run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}"], project)
        started = time.monotonic()
        run_queue(project, list(lrs), jobs=4, timeout_s=1500)
        print(f"4 queued experiments, -j 4: {time.monotonic() - started:.0f} s")
        client = MlflowClient(team_stack.mlflow_url)
        assert _epochs(client, "team-queue") == [[1, 2]] * 4
        for key in ("val_rel", "lr"):
            assert _epochs(client, "team-queue", key) == [[1, 2]] * 4, key
        versions = sorted(
            client.search_model_versions("name = 'fcrn-queue'"), key=lambda v: int(v.version)
        )
        champion = client.get_model_version_by_alias("fcrn-queue", "champion")
    assert len(versions) == 4
    # Replaying the decisions in version order gives the same champion: each saw the last.
    best = None
    for v in versions:
        promote = best is None or float(v.tags["value"]) < float(best.tags["value"])
        assert v.tags["decision"] == ("champion" if promote else "candidate"), v.tags
        best = v if promote else best
    assert champion.version == best.version
