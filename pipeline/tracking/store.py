"""Where runs live: the tracking URI, the lock on a local SQLite store, and the start-up check.

The local SQLite store is shared by parallel queued experiments (`dvc queue start -j N`):
creating its tables and registering a version are each done by one process at a time
(`store_lock`); MLflow would otherwise fail one of two processes that open a new store together.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import mlflow
import mlflow.artifacts
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline.access import access_message
from pipeline.tracking.http import http_policy

DEFAULT_STORE = "mlflow.db"  # what a bare `mlflow ui` in the repo root shows
LOCAL_UI = "http://127.0.0.1:5000"  # where it serves
PROBE_TIMEOUT_S = 5  # connect/read timeout of the start-up check: fail in seconds, not minutes
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


def ui_hint(exp_id: str) -> str:
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        return ui_url(uri, exp_id)
    return f"`mlflow ui` here, then {ui_url(LOCAL_UI, exp_id)}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the repo root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{_repo_root() / DEFAULT_STORE}"


def sqlite_db() -> Path | None:
    """The file of a local SQLite tracking store (``sqlite:///<path>[?options]``), else None."""
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0]).resolve()


def store_lock() -> FileLock | nullcontext[None]:
    """A lock beside a local SQLite store (``<db>.lock``), else nothing: a server serializes its
    own writes. Held while a new store's tables are created and while a version is registered
    (the champion decision must see the versions registered before it)."""
    db = sqlite_db()
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
                f"MLFLOW_TRACKING_URI=http://...; docs/tracking.md, MLflow for a team)"
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
        with store_lock(), http_policy(0, PROBE_TIMEOUT_S):
            client = MlflowClient(uri)
            client.search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as e:  # a store can fail in many ways (HTTP, SQL, files); all mean "unusable"
        message = access_message(e) or f"MLflow tracking at {uri} is not usable: {first_line(e)}"
        raise TrackingError(message) from e
    return client


def version_file(uri: str, name: str, dst_dir: str) -> Path:
    """Download the file ``name`` a model version carries in its ``extra_files/`` (the ONNX
    export, the model file) into ``dst_dir``; `FileNotFoundError` when the version has none."""
    connect()
    try:
        local = mlflow.artifacts.download_artifacts(f"{uri}/extra_files/{name}", dst_path=dst_dir)
    except (MlflowException, OSError) as e:  # no such file, or no such version or alias
        raise FileNotFoundError(f"{uri} at {tracking_uri()}: no {name} ({first_line(e)})") from None
    return Path(local)
