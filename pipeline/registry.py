"""The MLflow registry: an evaluated model becomes a version, promoted only on merit.

The registry must match the outputs on every store: `register` runs on each `dvc repro`
(`always_changed` in dvc.yaml, since DVC cannot see a store) and first asks the store at
MLFLOW_TRACKING_URI whether a version already holds this (model md5, test data md5, protocol).
If so it changes nothing (it only sets aliases a killed run left unset) and costs seconds: this
module imports no torch, and the model is not uploaded. If not (a fresh clone, a new server, a
deleted version), the run that trained the model gets the reports and the test metrics of every
protocol, and the model (pt2: loads without this repo's code) becomes a new version with alias
`candidate` and a description of what it was trained and evaluated on. `champion` moves only
when the version beats the champion on the headline metric of the *same* test data (md5) and
protocol: numbers from other data are not comparable, so they never displace it.

reports/registration.json holds the version, the decision and its reason, read back from the
version's tags, and no run ids or times: re-running reproduces its bytes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import mlflow
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from pipeline.config import Params, parse_params
from pipeline.identity import TrainingIdentity
from pipeline.io import md5sum
from pipeline.tracking import TrainingRun, connect, model_run, store_lock
from pipeline.tracking.store import STORE_LOCK_TIMEOUT_S

HEADLINE = "rel"  # mean absolute relative error: the paper's first column; lower is better
CANDIDATE, CHAMPION = "candidate", "champion"
# Version tags: what a version was evaluated on, and what register decided for it.
RECORD_TAGS = ("model_md5", "test_data_md5", "protocol", "metric", "value", "decision", "reason")
SAME_EVALUATION = ("model_md5", "test_data_md5", "protocol")  # one version per such triple


def numeric_leaves(tree: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """metrics.json -> ``{"test_rel": .., "test_eigen_rel": .., "test_baseline_laina_rel": ..}``."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(numeric_leaves(value, f"{prefix}{key}_"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def decide(record: Mapping[str, str], champion: ModelVersion | None) -> tuple[bool, str]:
    """(take champion?, why) for a new version's ``record`` against the current champion."""
    if champion is None:
        return True, "no champion yet"
    theirs = champion.tags
    if (theirs.get("test_data_md5"), theirs.get("protocol")) != (
        record["test_data_md5"],
        record["protocol"],
    ):
        return False, (
            f"champion v{champion.version} was evaluated on other test data or protocol "
            f"({theirs.get('protocol')}, test data md5 {theirs.get('test_data_md5')}): "
            f"not comparable, it stays"
        )
    new, old = float(record["value"]), float(theirs["value"])
    if new < old:
        return True, f"{HEADLINE} {new:.6g} < champion v{champion.version}'s {old:.6g}"
    return False, f"{HEADLINE} {new:.6g} >= champion v{champion.version}'s {old:.6g}"


def _alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at; None when the alias or the whole model is missing.

    MLflow's basic-auth answers a non-admin's question about a model that does not exist yet
    with 403, not 404 (it finds no permission to check): a 403 means "missing" when the model is
    not there, and a real refusal when it is.
    """
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as e:  # no such alias, or no such model yet
        if e.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            return None
        if e.error_code == "PERMISSION_DENIED" and not client.search_registered_models(
            filter_string=f"name = '{name}'"
        ):
            return None
        raise


def _decision_lock() -> AbstractContextManager[object]:
    """`store_lock` for a local store. For a server: a lock in the DVC workspace's .dvc/tmp, so
    that queued experiments running at once (`dvc queue start -j N`) decide one after another;
    the server cannot make "read the champion, then move it" atomic."""
    lock = store_lock()
    if not isinstance(lock, nullcontext):
        return lock
    folder = Path(os.environ.get("DVC_ROOT") or Path.cwd()) / ".dvc" / "tmp"
    if not folder.is_dir():
        return nullcontext()
    return FileLock(str(folder / "register.lock"), timeout=STORE_LOCK_TIMEOUT_S)


def _registered(client: MlflowClient, name: str, record: Mapping[str, str]) -> ModelVersion | None:
    """The version already holding this model with this evaluation, if any."""
    for version in client.search_model_versions(f"name = '{name}'"):
        if all(version.tags.get(k) == record[k] for k in SAME_EVALUATION):
            return version
    return None


def _set_aliases(client: MlflowClient, name: str, version: ModelVersion) -> None:
    """`candidate` on the newest version, and `champion` if its recorded decision says so.

    Setting only what is missing also finishes the job of a register killed between
    `register_model` and the aliases (the re-run finds that version). Only the newest version is
    touched, so re-registering an old model never moves an alias back to it.
    """
    newest = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    if int(version.version) != newest:
        return
    current = client.get_model_version(name, version.version).aliases
    wanted = [CANDIDATE] + ([CHAMPION] if version.tags.get("decision") == CHAMPION else [])
    for alias in wanted:
        if alias not in current:
            client.set_registered_model_alias(name, alias, version.version)


def describe_version(
    params: Params, record: Mapping[str, str], metrics: Mapping[str, Any], commit: str | None
) -> str:
    """The version's description: what it was trained on and how, and what it was scored on."""
    data, model, train = params.data, params.model, params.train
    source = (
        f"synthetic rooms (seed {data.synthetic.seed}, {data.synthetic.num_images} images)"
        if data.source == "synthetic"
        else "NYU Depth v2 labeled set"
    )
    h, w = data.preprocess.resize_hw
    headline = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("rel", "rms", "delta1") if k in metrics)
    return (
        f"FCRN ({model.encoder}, {model.decoder} decoder{', fast' if model.fast else ''}, "
        f"encoder weights {model.encoder_weights}) trained on {source}, train split at {h}x{w}, "
        f"{train.epochs} epochs of {train.optimizer} (lr {train.lr:g}, batch {train.batch_size}, "
        f"{train.loss} loss)" + (f" at commit {commit[:12]}" if commit else "") + ". "
        f"Evaluated on the test split (md5 {record['test_data_md5']}, "
        f"{metrics.get('num_test_images', '?')} images), protocol {record['protocol']}: "
        f"{headline}. Model file md5 {record['model_md5']}."
    )


def _register(
    run: TrainingRun,
    model_path: Path,
    reports: list[Path],
    metrics: Mapping[str, Any],
    record: Mapping[str, str],
    params: Params,
) -> ModelVersion:
    """Log reports, test metrics and the model into ``run``; register it with its decision.
    MLflow's fluent calls here use the URI `connect` set process-wide for ``run.client``."""
    from pipeline.served_model import log_model  # torch: only when there is a version to make

    client, run_id = run.client, run.run_id
    now = int(time.time() * 1000)
    test = [Metric(k, v, now, 0) for k, v in numeric_leaves(metrics, "test_").items()]
    client.log_batch(run_id, metrics=test)
    for path in reports:
        client.log_artifact(run_id, str(path), "reports")
    with mlflow.start_run(run_id=run_id):
        model_uri = log_model(model_path, params.data.preprocess.resize_hw, params.mlflow.onnx)
    name = params.mlflow.registered_model
    commit = client.get_run(run_id).data.tags.get("mlflow.source.git.commit")
    # The decision must see every version registered before this one (parallel experiments).
    with _decision_lock():
        promote, reason = decide(record, _alias_version(client, name, CHAMPION))
        tags = {**record, "decision": CHAMPION if promote else CANDIDATE, "reason": reason}
        if commit:
            tags["git_commit"] = commit
        version = mlflow.register_model(model_uri, name, tags=tags).version
        description = describe_version(params, record, metrics, commit)
        client.update_model_version(name, version, description=description)
        registered = client.get_model_version(name, version)
        _set_aliases(client, name, registered)
    return registered


def register(
    model: Path,
    metrics_path: Path,
    train_log: Path,
    train_h5: Path,
    test_h5: Path,
    run_state: Path,
    artifacts: list[Path],
    params_raw: Mapping[str, Any],
) -> dict[str, Any]:
    """Register ``model`` unless the store already has this model and evaluation; return the
    record that goes to reports/registration.json."""
    for path in [model, metrics_path, train_log, test_h5, *artifacts]:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (run `dvc repro` to make it)")
    params = parse_params(params_raw, "params.yaml")
    name = params.mlflow.registered_model
    metrics = json.loads(metrics_path.read_text())
    if not {"protocol", HEADLINE} <= metrics.keys():
        raise ValueError(f"{metrics_path}: no 'protocol' and '{HEADLINE}' (re-run `evaluate`)")
    record = {
        "model_md5": md5sum(model),
        "test_data_md5": md5sum(test_h5),
        "protocol": str(metrics["protocol"]),
        "metric": HEADLINE,
        "value": repr(float(metrics[HEADLINE])),
    }
    client = connect()
    version = _registered(client, name, record)
    if version is not None:
        print(f"{name} v{version.version} at {mlflow.get_tracking_uri()} already holds this model")
        if not version.description:  # a register killed before it was written
            commit = version.tags.get("git_commit")
            description = describe_version(params, record, metrics, commit)
            client.update_model_version(name, version.version, description=description)
        _set_aliases(client, name, version)
    else:
        reports = [metrics_path, *artifacts]
        # The training's own key, if it ran as `train.nproc` processes (a torchrun started by
        # hand with another count: a new run with the same params, tags and dataset instead).
        identity = TrainingIdentity.of(params, train_h5, params.train.nproc)
        with model_run(params_raw, params.mlflow, run_state, identity, train_log) as run:
            version = _register(run, model, reports, metrics, record, params)
    result = {"registered_model": name, "version": int(version.version)}
    return result | {k: version.tags.get(k) for k in RECORD_TAGS}
