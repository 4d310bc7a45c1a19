"""The MLflow registry: an evaluated model becomes a version, promoted only on merit.

The run that trained the model gets the reports and the test metrics of every protocol, then the
model (pt2: loads without this repo's code) becomes a new version with alias `candidate`.
`champion` moves only when the version beats the champion on the headline metric of the *same*
test data (md5) and protocol: numbers from other data are not comparable, so they never
displace it. A (model, test data, protocol) already registered registers nothing new (a run
killed before setting that version's aliases gets them on the re-run).

reports/registration.json holds the version, the decision and its reason, read back from the
version's tags, and no run ids or times: re-running reproduces its bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from torch import nn

from pipeline.config import parse_params
from pipeline.io import md5sum
from pipeline.model.io import load_model
from pipeline.tracking import model_run

HEADLINE = "rel"  # mean absolute relative error: the paper's first column; lower is better
CANDIDATE, CHAMPION = "candidate", "champion"
# Version tags: what a version was evaluated on, and what register decided for it.
RECORD_TAGS = ("model_md5", "test_data_md5", "protocol", "metric", "value", "decision", "reason")


class DepthAtInputSize(nn.Module):
    """The served graph: (N, 3, H, W) float32 RGB in [0, 1] -> (N, H, W) depth in metres,
    upsampled as `pipeline.inference.predict_depth` does, so REST answers match fcrn-predict."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


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
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as e:  # no such alias, or no such model yet
        if e.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            return None
        raise


def _registered(client: MlflowClient, name: str, record: Mapping[str, str]) -> ModelVersion | None:
    """The version already holding this model with this evaluation, if any."""
    same = ("model_md5", "test_data_md5", "protocol")
    for version in client.search_model_versions(f"name = '{name}'"):
        if all(version.tags.get(k) == record[k] for k in same):
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


def _log_model(model_path: Path, input_hw: tuple[int, int]) -> str:
    """Log the model (eval mode, pt2) into the active run; return its model URI."""
    net = DepthAtInputSize(load_model(model_path)).eval()
    # -1 marks the dims torch.export keeps dynamic; a batch of 2 keeps N dynamic (a size-1 dim
    # is exported as fixed). A numpy example (a tensor drops the pyfunc flavour) of 64x80 keeps
    # the version small; requirements are explicit, inferring them costs a subprocess.
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1))]),
    )
    example = np.random.default_rng(0).random((2, 3, 64, 80), dtype=np.float32)
    requirements = [
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]
    info = mlflow.pytorch.log_model(
        net,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=requirements,
        serialization_format="pt2",
        metadata={
            "input": "float32 RGB in [0, 1], N x 3 x H x W",
            "output": "depth in metres, N x H x W",
            "input_hw": list(input_hw),  # the training frame size: resize inputs to it first
        },
    )
    return info.model_uri


def _register(
    run_id: str,
    model_path: Path,
    reports: list[Path],
    metrics: Mapping[str, Any],
    record: Mapping[str, str],
    input_hw: tuple[int, int],
    name: str,
) -> ModelVersion:
    """Log reports, test metrics and the model into the run; register it with its decision."""
    client = MlflowClient()
    now = int(time.time() * 1000)
    test = [Metric(k, v, now, 0) for k, v in numeric_leaves(metrics, "test_").items()]
    client.log_batch(run_id, metrics=test)
    for path in reports:
        client.log_artifact(run_id, str(path), "reports")
    with mlflow.start_run(run_id=run_id):
        model_uri = _log_model(model_path, input_hw)
    promote, reason = decide(record, _alias_version(client, name, CHAMPION))
    tags = {**record, "decision": CHAMPION if promote else CANDIDATE, "reason": reason}
    version = mlflow.register_model(model_uri, name, tags=tags).version
    return client.get_model_version(name, version)


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
    """Register ``model`` (unless this model and evaluation already are); return the record
    that goes to reports/registration.json."""
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
    cfg = params.mlflow
    with model_run(params_raw, cfg, run_state, {"train": train_h5}, train_log) as run:
        version = _registered(run.client, name, record)
        if version is not None:
            print(f"{name} v{version.version} already holds this model and evaluation")
        else:
            input_hw = params.data.preprocess.resize_hw
            reports = [metrics_path, *artifacts]
            version = _register(run.run_id, model, reports, metrics, record, input_hw, name)
        _set_aliases(run.client, name, version)
    result = {"registered_model": name, "version": int(version.version)}
    return result | {k: version.tags.get(k) for k in RECORD_TAGS}
