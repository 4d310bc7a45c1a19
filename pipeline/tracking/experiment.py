"""The MLflow experiment a training logs to, created and tagged for the UI when missing."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline.tracking.store import TrackingError, sqlite_db, tracking_uri

# The UI opens an experiment with this tag on its training runs; untagged, on the GenAI overview.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if missing; tagged as model training (what the UI
    opens it on) if it is not tagged yet, e.g. made by an older version of this pipeline."""
    kind, value = EXPERIMENT_KIND
    exp = client.get_experiment_by_name(name)
    if exp is None:
        # A local SQLite store keeps its artifacts beside it. MLflow would use ./mlruns, in the
        # current folder: the temporary copy, when the first run is a queued experiment.
        db = sqlite_db()
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
