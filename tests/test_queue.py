"""Two queued experiments trained at once (`dvc queue start -j 2`) on the default SQLite store:
both tracked and registered, nothing lost, no `database is locked`."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e import copy_project, run, run_queue
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

EXPERIMENTS = {"lr-small": 0.0001, "lr-large": 0.001}


def test_two_parallel_queued_experiments_are_tracked_and_registered(
    reproduced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default: mlflow.db
    # Outputs committed: each queued copy checks the data out of the cache. A new store.
    root = copy_project(reproduced, tmp_path / "project")
    for name, lr in EXPERIMENTS.items():
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}"], root)
    logs = run_queue(root, list(EXPERIMENTS), jobs=2, timeout_s=1200)
    for log in logs.values():
        assert "database is locked" not in log

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fcrn-nyu")
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_name: r.data.params["train.lr"] for r in runs} == {
        name: str(lr) for name, lr in EXPERIMENTS.items()
    }
    for r in runs:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "train_loss")]
        assert sorted(steps) == [1, 2], r.info.run_name  # every epoch of both, live
        assert "test_rel" in r.data.metrics  # and evaluated into the same run
    versions = client.search_model_versions("name = 'fcrn-nyu'")
    assert sorted(v.run_id for v in versions) == sorted(r.info.run_id for r in runs)
    # One champion decision after the other: the second saw the first.
    decisions = sorted(versions, key=lambda v: int(v.version))
    assert decisions[0].tags["reason"] == "no champion yet"
    assert "champion v1" in decisions[1].tags["reason"]
