"""The `register` stage against a real `mlflow server`: what lands in the run, and that
`champion` moves only for a better model on the same test data and protocol."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from mlflow import MlflowClient

from pipeline.config import MlflowConfig
from pipeline.tracking import training_run

if TYPE_CHECKING:
    from tiny_project import TinyProject

pytestmark = pytest.mark.slow


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return dict(client.get_registered_model(name).aliases)


def test_registry_promotes_only_a_better_model_on_the_same_data(
    tiny_project: Callable[[str], TinyProject],
    mlflow_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tiny_project("registry")
    name = project.model_name
    client = MlflowClient(mlflow_env["MLFLOW_TRACKING_URI"])

    # Training tracked live (epochs 1-2), then evaluated: register fills the same run.
    monkeypatch.chdir(project.root)
    cfg = MlflowConfig(experiment=project.experiment, registered_model=name)
    with training_run(project.params_raw, cfg, project.state_file, project.identity(), {}) as run:
        run.log_epoch({"train_loss": 0.9, "lr": 3e-4, "val_rel": 0.5}, step=1)
    project.write_model(out_bias=1.0)
    first = project.register()
    assert first == {
        "registered_model": name,
        "version": 1,
        "model_md5": first["model_md5"],
        "test_data_md5": first["test_data_md5"],
        "protocol": "laina",
        "metric": "rel",
        "value": "0.2",
        "decision": "champion",
        "reason": "no champion yet",
    }
    assert _aliases(client, name) == {"candidate": "1", "champion": "1"}
    version = client.get_model_version(name, "1")
    assert version.run_id == run.run_id
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project.root, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version.tags["git_commit"] == head
    # The description says what it was trained and evaluated on.
    for part in ("trained on synthetic rooms (seed 0", "train split at 48x64", "protocol laina"):
        assert part in version.description, version.description
    assert first["test_data_md5"] in version.description
    logged = client.get_run(run.run_id).data
    for protocol in ("laina", "eigen", "crop"):
        assert logged.metrics[f"test_{protocol}_rel"] == 0.2
    assert logged.metrics["test_rel"] == 0.2
    assert logged.metrics["test_baseline_laina_rel"] == 1.0
    # Epoch 2 was missing from live tracking: logged from train_log.csv, epoch 1 not twice.
    assert sorted(m.step for m in client.get_metric_history(run.run_id, "train_loss")) == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.run_id, "reports")}
    reports = ("metrics.json", "predictions.png", "train_curves.png", "validation.json")
    assert artifacts == {f"reports/{f}" for f in (*reports, "validation.html")}

    # The same model and evaluation again (what every `dvc repro` runs): nothing new, nothing
    # touched (not even the run), the same bytes.
    registration = project.reports / "registration.json"
    before = registration.read_bytes()
    run_before = client.get_run(run.run_id).info
    assert project.register()["version"] == 1
    assert registration.read_bytes() == before
    assert len(client.search_model_versions(f"name = '{name}'")) == 1
    assert client.get_run(run.run_id).info == run_before

    # A worse model: a candidate, the champion stays. Training not tracked (no side file):
    # register records a run of its own.
    project.state_file.unlink()
    project.write_model(out_bias=2.0)
    project.write_metrics(0.25)
    worse = project.register()
    assert (worse["version"], worse["decision"]) == (2, "candidate")
    assert worse["reason"] == "rel 0.25 >= champion v1's 0.2"
    assert _aliases(client, name) == {"candidate": "2", "champion": "1"}
    recovered = client.get_run(client.get_model_version(name, "2").run_id)
    assert recovered.info.run_id != run.run_id
    assert recovered.data.params["train.lr"] == "0.0003"
    assert recovered.inputs.dataset_inputs[0].dataset.name == "train"

    # A better one on the same data and protocol takes champion.
    project.write_model(out_bias=3.0)
    project.write_metrics(0.15)
    better = project.register()
    assert (better["version"], better["decision"]) == (3, "champion")
    assert _aliases(client, name) == {"candidate": "3", "champion": "3"}

    # Killed between registering v3 and setting its aliases: they still point where they did.
    # The re-run registers nothing and gives v3 the aliases its recorded decision named.
    client.set_registered_model_alias(name, "candidate", "2")
    client.set_registered_model_alias(name, "champion", "1")
    assert project.register() == better
    assert _aliases(client, name) == {"candidate": "3", "champion": "3"}
    assert len(client.search_model_versions(f"name = '{name}'")) == 3

    # Far better numbers, but on other test data: not comparable, the champion stays.
    project.write_model(out_bias=4.0)
    project.write_metrics(0.05)
    project.write_test_data("another test split")
    other = project.register()
    assert (other["version"], other["decision"]) == (4, "candidate")
    assert "other test data" in str(other["reason"])
    assert _aliases(client, name) == {"candidate": "4", "champion": "3"}

    # Back to the first model and data (a checkout of an old commit): v1 is found again, and no
    # alias moves back to it.
    project.write_model(out_bias=1.0)
    project.write_metrics(0.2)
    project.write_test_data("test split")
    assert project.register()["version"] == 1
    assert _aliases(client, name) == {"candidate": "4", "champion": "3"}

    # A version deleted in the UI: the next register makes a new one for that model.
    client.delete_model_version(name, "1")
    again = project.register()
    assert (again["version"], again["decision"]) == (5, "candidate")
    assert again["reason"] == "rel 0.2 >= champion v3's 0.15"
    assert _aliases(client, name) == {"candidate": "5", "champion": "3"}
