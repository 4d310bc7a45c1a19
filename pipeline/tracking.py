"""The one place that talks to MLflow: where runs live, what a training run records, and how
`register` finds the run of the current model again.

The run id is state of one machine and one tracking server, so it is kept in a git-ignored side
file (beside the training checkpoints), never in a DVC output: `dvc.lock` stays reproducible, a
killed training resumes its MLflow run, and `register` reopens the run that trained the model.
A tracking server that is down is reported before training starts; one that fails later only
costs live charts, never the training: `register` logs what is missing from the outputs.

The local SQLite store is shared by parallel queued experiments (`dvc queue start -j N`):
creating its tables and registering a version are each done by one process at a time
(`store_lock`); MLflow would otherwise fail one of two processes that open a new store together.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import yaml
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.exceptions import MlflowException

from pipeline.access import access_message
from pipeline.config import MlflowConfig
from pipeline.io import atomic_write_json, md5sum, remove_stale_temps

log = logging.getLogger(__name__)

DEFAULT_STORE = "mlflow.db"  # what a bare `mlflow ui` in the repo root shows
LOCAL_UI = "http://127.0.0.1:5000"  # where it serves
PROBE_TIMEOUT_S = 5  # connect/read timeout of the start-up check: fail in seconds, not minutes
LIVE_RETRIES, LIVE_TIMEOUT_S = 2, 10  # per-epoch logging: a dead server stalls training briefly
_BATCH = 100  # MLflow's limit of params or tags per log_batch request
# The UI opens an experiment with this tag on its training runs; untagged, on the GenAI overview.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# System metrics: one sample every 15 s, logged every 4th (once a minute). A cycle costs ~13 ms
# of one core (a 0.1 ms sample, MLflow's 6 ms run-status read, a quarter of a 25 ms log call;
# benchmarks/system_metrics.py): 0.09% of the training it runs beside, and 28 points for the
# 7-minute CPU default. Logging once a minute, not MLflow's every 10 s, spares a store shared by
# parallel experiments. MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL and
# MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING override both.
SYSTEM_METRICS_INTERVAL_S, SYSTEM_METRICS_SAMPLES_PER_LOG = 15.0, 4
STORE_LOCK_TIMEOUT_S = 600  # a registration holds the lock for seconds; a stuck one, not minutes


class TrackingError(ValueError):
    """The tracking server or store cannot be used; the message names its URI."""


def _repo_root() -> Path:
    """DVC sets ``DVC_ROOT`` to the workspace root for every stage, also for queued experiments
    that run in a temporary copy: their runs must land in the workspace's store, not the copy's."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def ui_url(base: str, exp_id: str) -> str:
    """The MLflow UI's page of an experiment's training runs at server ``base``.

    MLflow 3.17's UI opens an experiment on the page its GenAI / Model training switch names
    (GenAI in a browser that never flipped it: the traces overview), whatever the experiment's
    kind tag says; ``workflowType=machine_learning`` sets the switch for the link.
    """
    return f"{base.rstrip('/')}/#/experiments/{exp_id}?workflowType=machine_learning"


def _ui_hint(exp_id: str) -> str:
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        return ui_url(uri, exp_id)
    return f"`mlflow ui` here, then {ui_url(LOCAL_UI, exp_id)}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the repo root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{_repo_root() / DEFAULT_STORE}"


@contextmanager
def _http_policy(retries: int, timeout_s: int) -> Iterator[None]:
    """Bound MLflow's HTTP retries, back-off and timeout for the block (its defaults retry for
    minutes; it reads these variables on every request)."""
    policy = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
    }
    saved = {name: os.environ.get(name) for name in policy}
    os.environ.update(policy)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _sqlite_db() -> Path | None:
    """The file of a local SQLite tracking store (``sqlite:///<path>[?options]``), else None."""
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0]).resolve()


def store_lock() -> FileLock | nullcontext[None]:
    """A lock beside a local SQLite store (``<db>.lock``), else nothing: a server serializes its
    own writes. Held while a new store's tables are created and while a version is registered
    (the champion decision must see the versions registered before it)."""
    db = _sqlite_db()
    if db is None:
        return nullcontext()
    db.parent.mkdir(parents=True, exist_ok=True)
    return _TimedLock(f"{db}.lock", timeout=STORE_LOCK_TIMEOUT_S)


class _TimedLock(FileLock):
    """`FileLock` whose timeout is an `error:` line naming the store and the fix."""

    def __enter__(self) -> _TimedLock:
        try:
            return super().__enter__()
        except TimeoutError:
            raise TrackingError(
                f"{self.lock_file}: another process has held the lock on the SQLite tracking "
                f"store for {STORE_LOCK_TIMEOUT_S} s. If none is running, delete this file; for "
                f"many parallel experiments, use a tracking server (`mlflow server`, then "
                f"MLFLOW_TRACKING_URI=http://...; README: MLflow for a team)"
            ) from None


def first_line(exc: BaseException) -> str:
    """MLflow's messages run over many lines; an ``error:`` line needs the first."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect() -> MlflowClient:
    """Point MLflow at `tracking_uri` and check that it answers, within seconds.

    Sets MLflow's process-wide URI too, which its fluent APIs (`log_model`, `pyfunc.load_model`)
    use. Raises `TrackingError` naming the URI, so a dead server stops a stage before any work.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        # Opening a new SQLite store creates its tables: one process at a time.
        with store_lock(), _http_policy(0, PROBE_TIMEOUT_S):
            client = MlflowClient(uri)
            client.search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as e:  # a store can fail in many ways (HTTP, SQL, files); all mean "unusable"
        message = access_message(e) or f"MLflow tracking at {uri} is not usable: {first_line(e)}"
        raise TrackingError(message) from e
    return client


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if missing; tagged as model training (what the UI
    opens it on) if it is not tagged yet, e.g. made by an older version of this pipeline."""
    kind, value = EXPERIMENT_KIND
    exp = client.get_experiment_by_name(name)
    if exp is None:
        # A local SQLite store keeps its artifacts beside it. MLflow would use ./mlruns, in the
        # current folder: the temporary copy, when the first run is a queued experiment.
        db = _sqlite_db()
        location = None if db is None else str(db.parent / "mlruns")
        try:
            return client.create_experiment(name, location, tags={kind: value})
        except MlflowException as e:  # a parallel experiment created it a moment ago
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)
    if exp.lifecycle_stage != "active":
        raise TrackingError(
            f"MLflow experiment {name!r} at {tracking_uri()} is deleted: restore it "
            f"(`mlflow experiments restore`) or set another mlflow.experiment"
        )
    if kind not in exp.tags:
        client.set_experiment_tag(exp.experiment_id, kind, value)
    return exp.experiment_id


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params -> ``{"train.lr": "0.0003", ...}``; lists stay one value."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else str(value)
    return flat


def training_key(params_raw: Mapping[str, Any], data_md5: Mapping[str, str]) -> str:
    """What makes two trainings the same one: model and train params plus the data's hashes."""
    blob = json.dumps(
        [params_raw.get("model"), params_raw.get("train"), sorted(data_md5.values())],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):  # no git, or not a repository
        return None
    return out.stdout.strip()


@dataclass(frozen=True)
class GitState:
    """What a run records of the code it ran."""

    commit: str
    branch: str | None  # None when HEAD is detached (CI checks out pull requests so)
    dirty: bool


def git_state() -> GitState | None:
    """The commit, branch and dirty flag of the repository at the cwd; None outside git.

    Dirty means changed code: params.yaml, dvc.lock and reports/ are left out, since
    `dvc exp run -S` edits params.yaml, every stage rewrites dvc.lock and DVC deletes a stage's
    reports before running it; the run records their content as params, tags and artifacts.
    """
    if not (commit := _git("rev-parse", "HEAD")):
        return None
    changed = _git(
        "status", "--porcelain", "--untracked-files=no", "--", ".",
        ":!params.yaml", ":!dvc.lock", ":!reports",
    )  # fmt: skip
    branch = _git("symbolic-ref", "--quiet", "--short", "HEAD")
    return GitState(commit, branch or None, bool(changed))


def run_name(git: GitState | None) -> str | None:
    """The DVC experiment's name, else ``branch@commit`` (``-dirty`` with changed code): a run
    of `dvc repro` in the workspace is then found by the commit it ran. None: MLflow's own."""
    if name := os.environ.get("DVC_EXP_NAME"):
        return name
    if git is None:
        return None
    label = f"{git.branch}@{git.commit[:7]}" if git.branch else git.commit[:7]
    return label + ("-dirty" if git.dirty else "")


def _lineage_tags(git: GitState | None) -> dict[str, str]:
    """Where the run comes from (the stage script, for the UI's Source column), the git commit
    and dirty flag, the DVC experiment, and dvc.lock's hashes of data/ outputs."""
    script, cwd = Path(sys.argv[0]).resolve(), Path.cwd().resolve()
    source = script.relative_to(cwd) if script.is_relative_to(cwd) else script
    tags = {"mlflow.source.name": str(source), "mlflow.source.type": "LOCAL"}
    if git is not None:
        tags["mlflow.source.git.commit"] = git.commit
        tags["git.dirty"] = str(git.dirty)
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline")):
        if value := os.environ.get(env):
            tags[tag] = value
    lock = Path("dvc.lock")
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []):
                if str(out["path"]).startswith("data/") and "md5" in out:
                    tags[f"dvc.lock.{out['path']}"] = out["md5"]
    return tags


def _log_dataset(client: MlflowClient, run_id: str, name: str, path: Path, md5: str) -> None:
    source = json.dumps({"uri": str(path)})
    dataset = Dataset(name=name, digest=md5, source_type="local", source=source)
    context = InputTag(key="mlflow.data.context", value="training")
    client.log_inputs(run_id, [DatasetInput(dataset=dataset, tags=[context])])


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
            with _http_policy(LIVE_RETRIES, LIVE_TIMEOUT_S):
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
            with _http_policy(LIVE_RETRIES, LIVE_TIMEOUT_S):
                self.client.set_terminated(self.run_id, status)
        except Exception as e:  # the outputs are safe; the next `register` reopens the run
            log.warning("could not mark MLflow run %s %s: %s", self.run_id, status, first_line(e))


def read_log_csv(path: Path) -> list[dict[str, float]]:
    """reports/train_log.csv -> rows of floats (empty cells, e.g. no validation, dropped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _open_run(
    params_raw: Mapping[str, Any],
    cfg: MlflowConfig,
    state_file: Path,
    data_files: Mapping[str, Path],
    system_info: Mapping[str, str],
    reopen_finished: bool,
) -> TrainingRun:
    """Reopen the run recorded in ``state_file`` if it belongs to this training, else start one."""
    remove_stale_temps(state_file)  # what a kill during its last write left
    client = connect()
    exp_id = experiment_id(client, cfg.experiment)
    data_md5 = {name: md5sum(path) for name, path in data_files.items()}
    key = training_key(params_raw, data_md5)
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
        **_lineage_tags(git),
        **{f"sys.{k}": v for k, v in system_info.items()},
        "training_key": key,
        **{f"data.{name}.md5": md5 for name, md5 in data_md5.items()},
    }
    run = client.create_run(exp_id, run_name=run_name(git), tags=tags)
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in flatten(params_raw).items()]
    for i in range(0, len(params), _BATCH):
        client.log_batch(run_id, params=params[i : i + _BATCH])
    for name, path in data_files.items():
        _log_dataset(client, run_id, name, path, data_md5[name])
    atomic_write_json(state_file, {"tracking_uri": uri, "run_id": run_id, "training_key": key})
    log.info("MLflow: run %s (%s) at %s; UI: %s", run.info.run_name, run_id, uri, _ui_hint(exp_id))
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
def system_metrics(run_id: str) -> Iterator[None]:
    """MLflow's system metrics (``system/*``: CPU, memory, disk, network, and each GPU's
    utilisation and memory when nvidia-ml-py finds one) sampled in a thread for the block; a
    resumed run continues its steps. The thread only warns and stops if the store fails."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=SYSTEM_METRICS_INTERVAL_S,
        samples_before_logging=SYSTEM_METRICS_SAMPLES_PER_LOG,
        resume_logging=True,
        tracking_uri=tracking_uri(),
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


@contextmanager
def training_run(
    params_raw: Mapping[str, Any],
    cfg: MlflowConfig,
    state_file: Path,
    data_files: Mapping[str, Path],
    system_info: Mapping[str, str],
) -> Iterator[TrainingRun]:
    """The MLflow run of one training, for the length of the block, with system metrics.

    Continues the run in ``state_file`` when it is the same, unfinished training (a resumed
    run), else starts one named after the DVC experiment (or ``branch@commit``) with the
    flattened params, lineage tags, ``system_info`` (as ``sys.*`` tags) and each of
    ``data_files`` as a dataset input with its md5. Raises `TrackingError` within seconds if
    the store is unreachable. The short HTTP policy covers the metrics thread too: a server
    that dies mid-training delays its end by seconds, not by MLflow's minutes of retries.
    """
    run = _open_run(params_raw, cfg, state_file, data_files, system_info, reopen_finished=False)
    with (
        _http_policy(LIVE_RETRIES, LIVE_TIMEOUT_S),
        _run_context(run),
        system_metrics(run.run_id),
    ):
        yield run


@contextmanager
def model_run(
    params_raw: Mapping[str, Any],
    cfg: MlflowConfig,
    state_file: Path,
    data_files: Mapping[str, Path],
    train_log: Path,
) -> Iterator[TrainingRun]:
    """The run that trained the current model, reopened, with any epochs it missed logged.

    Falls back to a new run (the same params, tags and dataset) when training was not tracked
    or its run is gone, so a model is never registered without its lineage.
    """
    run = _open_run(params_raw, cfg, state_file, data_files, {}, reopen_finished=True)
    with _run_context(run):
        if added := run.log_epochs(read_log_csv(train_log)):
            log.info("MLflow: logged %d epoch(s) that live tracking missed", added)
        yield run
