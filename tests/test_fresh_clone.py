"""A new user's first commands on a fresh `git clone`: the registry must match the outputs.

The origin is a git + DVC copy of this working tree on the tiny config whose outputs were
reproduced and committed, as main holds them (dvc.lock, reports/; models/, data/ and mlflow.db
are not in git). The README's `make repro` is `dvc repro` after building .venv; the test runs
`dvc repro` with this interpreter's venv (building one takes minutes).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from e2e import TINY, run
from mlflow import MlflowClient
from PIL import Image

if TYPE_CHECKING:
    from conftest import MlflowServer

pytestmark = pytest.mark.slow

MODEL = "fcrn-nyu"  # the defaults of params.yaml: each store here is new, so no clash


def _stages_run(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {s for s in ("train", "evaluate", "register") if f"Running stage '{s}'" in result.stdout}


def _versions(uri: str) -> list[int]:
    return sorted(
        int(v.version) for v in MlflowClient(uri).search_model_versions(f"name = '{MODEL}'")
    )


def test_a_fresh_clone_registers_predicts_and_follows_a_new_server(
    reproduced: Path,
    tmp_path: Path,
    mlflow_server_factory: Callable[[str], MlflowServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    clone = tmp_path / "clone"  # of a project whose `dvc repro` outputs are committed
    run(["git", "clone", "-q", str(reproduced), str(clone)], tmp_path)
    registration = clone / "reports/registration.json"
    committed = registration.read_bytes()

    # The model is not in git: train re-runs (to the same bytes), evaluate's deps then match the
    # committed metrics, and register still registers: the clone's new store has no version.
    first = run(["dvc", "repro"], clone)
    assert _stages_run(first) == {"train", "register"}, first.stdout
    store = f"sqlite:///{clone / 'mlflow.db'}"
    assert _versions(store) == [1]
    assert registration.read_bytes() == committed  # v1 champion, as in the origin's store

    # The README's command, in a fresh process, with the default models:/fcrn-nyu@champion.
    (clone / "photos").mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(clone / "photos/room.png")
    predicted = run(["fcrn-predict", "photos/", "--out", "depth/"], clone)
    assert predicted.stdout.startswith("1 depth maps in depth"), predicted.stdout
    with Image.open(clone / "depth/room.png") as depth:
        assert (depth.mode, depth.size) == ("I;16", (80, 60))

    # Again: nothing retrains, nothing is registered, registration.json keeps its bytes.
    second = run(["dvc", "repro"], clone)
    assert _stages_run(second) == {"register"}, second.stdout
    assert f"{MODEL} v1 at {store} already holds this model" in second.stdout
    assert _versions(store) == [1]
    assert registration.read_bytes() == committed
    started = time.monotonic()
    run(["dvc", "repro", "--single-item", "register"], clone)
    register_s = time.monotonic() - started
    print(f"register when the store holds the version: {register_s:.1f} s (dvc included)")
    assert register_s < 20

    # A new team server: registered there, from the outputs, without training or evaluating.
    server = mlflow_server_factory(f"sqlite:///{tmp_path / 'team.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    third = run(["dvc", "repro"], clone)
    assert _stages_run(third) == {"register"}, third.stdout
    assert _versions(server.url) == [1]
    client = MlflowClient(server.url)
    version = client.get_model_version_by_alias(MODEL, "champion")
    lineage = client.get_run(version.run_id)
    assert lineage.data.params["train.epochs"] == str(TINY["train.epochs"])
    assert lineage.data.tags["mlflow.source.name"] == "stages/register.py"
    assert registration.read_bytes() == committed
    assert _versions(store) == [1]  # the clone's own store is untouched
