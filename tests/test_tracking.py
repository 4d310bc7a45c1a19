"""Live tracking against a real `mlflow server`: what a training run records, resuming, and
failing fast or losing nothing when the server is down."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from filelock import FileLock
from mlflow import MlflowClient

from pipeline import tracking
from pipeline.config import MlflowConfig
from pipeline.io import md5sum
from pipeline.tracking import (
    TrackingError,
    connect,
    flatten,
    model_run,
    tracking_uri,
    training_run,
)

if TYPE_CHECKING:
    from conftest import MlflowServer
    from tiny_project import TinyProject

SYSTEM = {"device": "cpu", "precision": "bf16", "torch": "2.14.1", "cpu": "x86_64"}
EPOCHS = [{"epoch": e, "train_loss": 1.0 / e, "lr": 3e-4, "val_rel": 0.5 / e} for e in (1, 2, 3)]


def _open(project: TinyProject) -> Callable[[], object]:
    cfg = MlflowConfig(experiment=project.experiment, registered_model=project.model_name)
    return lambda: training_run(
        project.params_raw, cfg, project.state_file, project.identity(), SYSTEM
    )


def dead_server_uri() -> str:
    """An HTTP URI on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_flatten_keeps_lists_whole() -> None:
    assert flatten({"a": {"b": 1, "c": [2, 3]}, "d": "x"}) == {
        "a.b": "1",
        "a.c": "[2, 3]",
        "d": "x",
    }


def test_default_store_is_mlflow_db_in_the_dvc_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", "/srv/project")  # queued experiments run in a temp copy
    assert tracking_uri() == "sqlite:////srv/project/mlflow.db"


def test_a_queued_experiment_logs_into_the_workspace_store(
    tiny_project: Callable[[str], TinyProject],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`dvc exp run --queue` runs stages in a temporary copy with DVC_ROOT = the workspace: the
    default store and its artifacts must be the workspace's, not the copy's."""
    project = tiny_project("queued")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(project.root))
    monkeypatch.chdir(tmp_path)  # the temporary copy
    with _open(project)() as run:
        run.log_epoch(EPOCHS[0], step=1)
    client = MlflowClient(f"sqlite:///{project.root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(project.experiment)
    assert experiment.artifact_location == str(project.root / "mlruns")
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_training_run_records_params_epochs_lineage_and_data(
    tiny_project: Callable[[str], TinyProject],
    mlflow_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tiny_project("tracking")
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("DVC_EXP_NAME", "lr-3e-4")
    (project.root / "dvc.lock").write_text(
        yaml.safe_dump(
            {"stages": {"preprocess": {"outs": [{"path": "data/processed/train.h5", "md5": "ab"}]}}}
        )
    )
    with _open(project)() as run:
        for row in EPOCHS:
            run.log_epoch(row, step=int(row["epoch"]))

    client = MlflowClient(mlflow_env["MLFLOW_TRACKING_URI"])
    got = client.get_run(run.run_id)
    experiment = client.get_experiment(got.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert got.info.run_name == "lr-3e-4"
    assert got.info.status == "FINISHED"
    assert got.data.params["train.lr"] == "0.0003"
    assert got.data.params["data.preprocess.resize_hw"] == "[48, 64]"
    assert got.data.params["mlflow.experiment"] == project.experiment
    for key in ("train_loss", "lr", "val_rel"):
        assert _steps(client, run.run_id, key) == [1, 2, 3]
    tags = got.data.tags
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert tags["mlflow.source.git.commit"] == head.stdout.strip()
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]  # the Source column
    assert tags["git.dirty"] == "False"
    assert tags["dvc.exp_name"] == "lr-3e-4"
    assert tags["dvc.lock.data/processed/train.h5"] == "ab"
    assert tags["sys.device"] == "cpu" and tags["sys.precision"] == "bf16"
    (dataset_input,) = got.inputs.dataset_inputs
    assert dataset_input.dataset.name == "train"
    assert dataset_input.dataset.digest == md5sum(project.train_h5)
    assert run.run_id in project.state_file.read_text()


@pytest.mark.slow
def test_a_resumed_training_continues_its_run_and_a_new_one_starts_another(
    tiny_project: Callable[[str], TinyProject],
    mlflow_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tiny_project("resume")
    monkeypatch.chdir(project.root)
    open_run = _open(project)
    with pytest.raises(KeyboardInterrupt), open_run() as first:
        first.log_epoch(EPOCHS[0], step=1)
        raise KeyboardInterrupt  # killed after epoch 1
    client = MlflowClient(mlflow_env["MLFLOW_TRACKING_URI"])
    assert client.get_run(first.run_id).info.status == "KILLED"
    with open_run() as resumed:
        for row in EPOCHS[1:]:
            resumed.log_epoch(row, step=int(row["epoch"]))
    assert resumed.run_id == first.run_id
    assert _steps(client, first.run_id, "train_loss") == [1, 2, 3]
    assert client.get_run(first.run_id).info.status == "FINISHED"
    with open_run() as retrained:  # the same params again (`dvc repro -f`): another training
        pass
    assert retrained.run_id != first.run_id


def test_a_held_sqlite_store_lock_is_one_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stuck while holding the local store's lock: the next one stops with the lock
    file and the way out (delete it, or use a tracking server), not a hang."""
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setattr(tracking.store, "STORE_LOCK_TIMEOUT_S", 0.2)
    with (
        FileLock(f"{db}.lock"),
        pytest.raises(TrackingError, match=r"mlflow\.db\.lock: .* use a tracking server"),
    ):
        connect()
    assert not db.exists()  # nothing was opened


def test_unreachable_server_fails_fast_naming_the_uri(
    tiny_project: Callable[[str], TinyProject],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tiny_project("down")
    monkeypatch.chdir(project.root)
    uri = dead_server_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=uri), _open(project)():
        pytest.fail("the block must not run")
    assert time.monotonic() - started < 10
    assert not project.state_file.exists()


@pytest.mark.slow
def test_a_server_outage_costs_live_charts_only(
    tiny_project: Callable[[str], TinyProject],
    mlflow_server_factory: Callable[[str], MlflowServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server dies after epoch 1: training goes on unhindered; once it is back, `register`'s
    `model_run` reopens the same run and logs the epochs it missed, each once."""
    project = tiny_project("outage")
    monkeypatch.chdir(project.root)
    server = mlflow_server_factory(f"sqlite:///{tmp_path / 'outage.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    with _open(project)() as run:
        run.log_epoch(EPOCHS[0], step=1)
        server.stop()
        started = time.monotonic()
        for row in EPOCHS[1:]:
            run.log_epoch(row, step=int(row["epoch"]))
    # Two short retries for epoch 2, none for epoch 3, two for ending the run: seconds, where
    # MLflow's default retries would hold each call for minutes.
    assert time.monotonic() - started < 30
    log_csv = project.reports / "train_log.csv"
    log_csv.write_text(
        "epoch,train_loss,lr,val_rel\n"
        + "".join(f"{r['epoch']},{r['train_loss']},{r['lr']},{r['val_rel']}\n" for r in EPOCHS)
    )
    server.start()
    cfg = MlflowConfig(experiment=project.experiment, registered_model=project.model_name)
    with model_run(project.params_raw, cfg, project.state_file, project.identity(), log_csv):
        pass
    client = MlflowClient(server.url)
    assert _steps(client, run.run_id, "train_loss") == [1, 2, 3]
    assert client.get_run(run.run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_a_workspace_run_is_named_after_its_commit_and_records_system_metrics(
    tiny_project: Callable[[str], TinyProject],
    mlflow_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`dvc repro` (no DVC experiment) names the run branch@commit, -dirty with changed code;
    an experiment made untagged gets the UI's training kind; MLflow's system metrics are
    sampled at the interval its environment variables set."""
    project = tiny_project("workspace")
    monkeypatch.chdir(project.root)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    client = MlflowClient(mlflow_env["MLFLOW_TRACKING_URI"])
    exp_id = client.create_experiment(project.experiment)  # as an older pipeline made it
    assert "mlflow.experimentKind" not in client.get_experiment(exp_id).tags

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=project.root, capture_output=True, text=True, check=True
        ).stdout.strip()

    label = f"{git('symbolic-ref', '--short', 'HEAD')}@{git('rev-parse', '--short=7', 'HEAD')}"
    (project.reports / "train_log.csv").unlink()  # DVC deletes outputs first: not "dirty"
    with _open(project)() as clean:
        time.sleep(1.5)
    (project.root / "params.yaml").write_text("# an edit: dvc exp run -S does the same\n")
    with _open(project)() as still_clean:
        pass
    (project.root / "code.py").write_text("x = 1\n")
    git("add", "code.py")  # a tracked code change
    with _open(project)() as dirty:
        pass

    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"
    names = [client.get_run(r.run_id).info.run_name for r in (clean, still_clean, dirty)]
    assert names == [label, label, f"{label}-dirty"]
    cpu = client.get_metric_history(clean.run_id, "system/cpu_utilization_percentage")
    assert len(cpu) >= 2, cpu  # 1.5 s at 0.2 s per sample, logged each sample
    assert client.get_metric_history(clean.run_id, "system/system_memory_usage_megabytes")
