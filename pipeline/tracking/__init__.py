"""Experiment tracking with MLflow: where runs live, what a training run records, and how
`register` finds the run of the current model again (the registry itself: `pipeline.registry`).

A tracking server that is down is reported before training starts; one that fails later only
costs live charts, never the training: `register` logs what is missing from the outputs.

Modules: `store` (URI, lock, start-up check), `http` (retry policy), `experiment`, `lineage`
(params, git, DVC), `runs` (the training's run), `system` (system metrics).
"""

from pipeline.tracking.experiment import experiment_id
from pipeline.tracking.lineage import GitState, flatten, git_state, run_name
from pipeline.tracking.runs import TrainingRun, model_run, training_run
from pipeline.tracking.store import (
    TrackingError,
    connect,
    first_line,
    store_lock,
    tracking_uri,
    ui_url,
    version_file,
)
from pipeline.tracking.system import (
    SYSTEM_METRICS_INTERVAL_S,
    SYSTEM_METRICS_SAMPLES_PER_LOG,
    system_metrics,
)

__all__ = [
    "SYSTEM_METRICS_INTERVAL_S",
    "SYSTEM_METRICS_SAMPLES_PER_LOG",
    "GitState",
    "TrackingError",
    "TrainingRun",
    "connect",
    "experiment_id",
    "first_line",
    "flatten",
    "git_state",
    "model_run",
    "run_name",
    "store_lock",
    "system_metrics",
    "tracking_uri",
    "training_run",
    "ui_url",
    "version_file",
]
