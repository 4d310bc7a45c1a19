"""The MLflow run of a training: opened (or reopened after a resume) by `training_run`, found
again by `register` through `model_run`.

The run id is state of one machine and one tracking server, so it is kept in a git-ignored side
file (beside the training checkpoints), never in a DVC output: `dvc.lock` stays reproducible, a
killed training resumes its MLflow run, and `register` reopens the run that trained the model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.exceptions import MlflowException

from pipeline.config import MlflowConfig
from pipeline.identity import TrainingIdentity
from pipeline.io import atomic_write_json, remove_stale_temps
from pipeline.tracking.experiment import experiment_id
from pipeline.tracking.http import LIVE_RETRIES, LIVE_TIMEOUT_S, http_policy
from pipeline.tracking.lineage import flatten, git_state, lineage_tags, run_name
from pipeline.tracking.store import connect, first_line, tracking_uri, ui_hint
from pipeline.tracking.system import system_metrics
from pipeline.train_log import read_rows

log = logging.getLogger("pipeline.tracking")

_BATCH = 100  # MLflow's limit of params or tags per log_batch request
_DATASET_ATTEMPTS = 4


def log_dataset(client: MlflowClient, run_id: str, name: str, path: Path, md5: str) -> None:
    """Record ``path`` (digest ``md5``) as the run's training data.

    MLflow's SQL store looks a dataset up and inserts it when missing in two steps, so queued
    experiments that start together on one server race to insert the same (experiment, name,
    digest) row and all but one get a unique-constraint error. The row the winner made is then
    there: the attempt is repeated, and finds it.
    """
    source = json.dumps({"uri": str(path)})
    dataset = Dataset(name=name, digest=md5, source_type="local", source=source)
    context = InputTag(key="mlflow.data.context", value="training")
    for attempt in range(_DATASET_ATTEMPTS):
        try:
            client.log_inputs(run_id, [DatasetInput(dataset=dataset, tags=[context])])
            return
        except MlflowException as e:
            if attempt + 1 == _DATASET_ATTEMPTS or not _is_unique_violation(e):
                raise
            time.sleep(0.2 * (attempt + 1))


def _is_unique_violation(e: MlflowException) -> bool:
    # PostgreSQL, SQLite and MySQL word it differently; SQLAlchemy passes their text through.
    text = str(e).lower()
    return "unique constraint" in text or "duplicate entry" in text


@dataclass
class TrainingRun:
    """An open MLflow run. `log_epoch` and `end` never raise: a training must not die of its
    charts."""

    client: MlflowClient
    run_id: str
    live: bool = True  # False after the first failure: stop stalling the epochs

    def log_epoch(self, row: Mapping[str, float], step: int) -> None:
        """Log one epoch's numbers (train_loss, lr, val_*) at ``step``; "epoch" is the step."""
        if not self.live:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in row.items() if k != "epoch"]
        try:
            with http_policy(LIVE_RETRIES, LIVE_TIMEOUT_S):
                self.client.log_batch(self.run_id, metrics=metrics)
        except Exception as e:  # any store failure: keep training, `register` catches up
            self.live = False
            log.warning(
                "MLflow logging failed at step %d (%s); training goes on without live "
                "metrics and the `register` stage logs them from the training log",
                step,
                first_line(e),
            )

    def log_epochs(self, rows: list[dict[str, float]]) -> int:
        """Log the epochs (rows with an "epoch" column) not in the run yet; return how many.

        Catches up after live logging failed; logging only what is missing keeps re-runs from
        duplicating points in the charts.
        """
        keys = {k for row in rows for k in row if k != "epoch"}
        have = {k: {m.step for m in self.client.get_metric_history(self.run_id, k)} for k in keys}
        now = int(time.time() * 1000)
        missing = [
            Metric(k, float(v), now, int(row["epoch"]))
            for row in rows
            for k, v in row.items()
            if k != "epoch" and int(row["epoch"]) not in have[k]
        ]
        for i in range(0, len(missing), 1000):
            self.client.log_batch(self.run_id, metrics=missing[i : i + 1000])
        return len({m.step for m in missing})

    def end(self, status: str) -> None:
        """Mark the run ended; a failure only warns (`register` reopens the run later)."""
        try:
            with http_policy(LIVE_RETRIES, LIVE_TIMEOUT_S):
                self.client.set_terminated(self.run_id, status)
        except Exception as e:  # the outputs are safe; the next `register` reopens the run
            log.warning("could not mark MLflow run %s %s: %s", self.run_id, status, first_line(e))


def _open_run(
    params_raw: Mapping[str, Any],
    cfg: MlflowConfig,
    state_file: Path,
    identity: TrainingIdentity,
    system_info: Mapping[str, str],
    reopen_finished: bool,
) -> TrainingRun:
    """Reopen the run recorded in ``state_file`` if it belongs to this training, else start one."""
    remove_stale_temps(state_file)  # what a kill during its last write left
    client = connect()
    exp_id = experiment_id(client, cfg.experiment)
    key = identity.key
    uri = tracking_uri()
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    if state.get("tracking_uri") == uri and state.get("training_key") == key:
        try:
            run = client.get_run(state["run_id"])
        except MlflowException:  # deleted from the server since
            run = None
        if (
            run is not None
            and run.info.lifecycle_stage == "active"
            and (reopen_finished or run.info.status != "FINISHED")
        ):
            client.update_run(run.info.run_id, status="RUNNING")
            log.info("MLflow: continuing run %s at %s", run.info.run_id, uri)
            return TrainingRun(client, run.info.run_id)

    git = git_state()
    tags = {
        **lineage_tags(git),
        **{f"sys.{k}": v for k, v in system_info.items()},
        "training_key": key,
        "data.train.md5": identity.data_md5,
    }
    run = client.create_run(exp_id, run_name=run_name(git), tags=tags)
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in flatten(params_raw).items()]
    for i in range(0, len(params), _BATCH):
        client.log_batch(run_id, params=params[i : i + _BATCH])
    log_dataset(client, run_id, "train", identity.train_h5, identity.data_md5)
    atomic_write_json(state_file, {"tracking_uri": uri, "run_id": run_id, "training_key": key})
    log.info("MLflow: run %s (%s) at %s; UI: %s", run.info.run_name, run_id, uri, ui_hint(exp_id))
    return TrainingRun(client, run_id)


@contextmanager
def _run_context(run: TrainingRun) -> Iterator[TrainingRun]:
    try:
        yield run
    except BaseException as e:
        run.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    run.end("FINISHED")


@contextmanager
def training_run(
    params_raw: Mapping[str, Any],
    cfg: MlflowConfig,
    state_file: Path,
    identity: TrainingIdentity,
    system_info: Mapping[str, str],
) -> Iterator[TrainingRun]:
    """The MLflow run of one training, for the length of the block, with system metrics.

    Continues the run in ``state_file`` when it is the same, unfinished training (a resumed
    run), else starts one named after the DVC experiment (or ``branch@commit``) with the
    flattened params, lineage tags, ``system_info`` (as ``sys.*`` tags) and the training data
    as a dataset input with its md5. Raises `TrackingError` within seconds if
    the store is unreachable. The short HTTP policy covers the metrics thread too: a server
    that dies mid-training delays its end by seconds, not by MLflow's minutes of retries.
    """
    run = _open_run(params_raw, cfg, state_file, identity, system_info, reopen_finished=False)
    with (
        http_policy(LIVE_RETRIES, LIVE_TIMEOUT_S),
        _run_context(run),
        system_metrics(run.run_id),
    ):
        yield run


@contextmanager
def model_run(
    params_raw: Mapping[str, Any],
    cfg: MlflowConfig,
    state_file: Path,
    identity: TrainingIdentity,
    train_log: Path,
) -> Iterator[TrainingRun]:
    """The run that trained the current model, reopened, with any epochs it missed logged.

    Falls back to a new run (the same params, tags and dataset) when training was not tracked
    or its run is gone, so a model is never registered without its lineage.
    """
    run = _open_run(params_raw, cfg, state_file, identity, {}, reopen_finished=True)
    with _run_context(run):
        if added := run.log_epochs(read_rows(train_log)):
            log.info("MLflow: logged %d epoch(s) that live tracking missed", added)
        yield run
