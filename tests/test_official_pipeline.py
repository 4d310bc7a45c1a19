"""The authors' model through the pipeline: params checks, the download (offline: what to do),
and, slow, `dvc exp run -S model.arch=official -S model.init=official -S train.epochs=0` on a
random-weight checkpoint served from 127.0.0.1 -> metrics, a registered version, predictions."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from e2e import REPO, TINY, closed_url, make_project, run
from official_reference import random_weights, write_zip
from PIL import Image
from test_official import tf_shapes

from pipeline.config import ConfigError, parse_params
from pipeline.download import DownloadError
from pipeline.model.build import build_model

OFFICIAL = ["-S", "model.arch=official", "-S", "model.init=official", "-S", "train.epochs=0"]
SIZES = {"data.preprocess.resize_hw": [240, 320], "data.preprocess.crop_hw": [228, 304]}


def _params(**changes: object) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in changes.items():
        *parents, leaf = key.split("__")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = value
    return raw


def test_default_params_are_unchanged_torchvision():
    params = parse_params(_params())
    assert (params.model.arch, params.model.init) == ("torchvision", "none")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train__epochs": 0}, "train.epochs 0 publishes the initial weights untrained"),
        ({"model__init": "official"}, "init 'official' needs arch 'official'"),
        (
            {"model__arch": "official", "model__init": "official"},
            "-S 'data.preprocess.resize_hw=[240,320]' -S 'data.preprocess.crop_hw=[228,304]'",
        ),
        ({"model__arch": "official", "model__encoder_weights": "imagenet"}, "encoder_weights"),
        ({"model__arch": "official", "model__encoder": "resnet18"}, "-S model.encoder=resnet50"),
    ],
)
def test_refusals_say_what_to_set(changes: dict, message: str):
    with pytest.raises(ConfigError) as info:
        parse_params(_params(**changes), "params.yaml")
    assert message in str(info.value)


def test_official_sizes_and_epochs_zero_accepted():
    raw = _params(model__arch="official", model__init="official", train__epochs=0)
    raw["data"]["preprocess"] = {"resize_hw": [240, 320], "crop_hw": [228, 304]}
    assert parse_params(raw).train.epochs == 0


def test_offline_error_names_url_checksum_and_path(tmp_path: Path):
    url = closed_url("/NYU_FCRN-checkpoint.zip")
    raw = _params(model__arch="official", model__init="official")
    raw["model"]["official"].update(url=url, retries=0, backoff_s=0.0)
    cfg = parse_params({**raw, "data": {**raw["data"], "preprocess": {
        "resize_hw": [240, 320], "crop_hw": [228, 304]}}}).model  # fmt: skip
    with pytest.raises(DownloadError) as info:
        build_model(cfg, 0.0, tmp_path / "downloads")
    message = str(info.value)
    assert url in message
    assert cfg.official.sha256 in message
    assert str(tmp_path / "downloads/NYU_FCRN-checkpoint.zip") in message
    assert not (tmp_path / "downloads/NYU_FCRN-checkpoint.zip").exists()


@pytest.fixture(scope="module")
def served_zip(module_tmp: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    """(URL, sha256) of a random-weight NYU_FCRN-checkpoint.zip (~254 MB) on 127.0.0.1."""
    root = module_tmp("weights")
    write_zip(root / "NYU_FCRN-checkpoint.zip", random_weights(tf_shapes(), seed=5))
    with open(root / "NYU_FCRN-checkpoint.zip", "rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/NYU_FCRN-checkpoint.zip", sha256
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_exp_run_evaluates_registers_and_predicts_the_official_model(
    served_zip: tuple[str, str], tmp_path: Path
):
    url, sha256 = served_zip
    changes = {**TINY, **SIZES, "model.official.url": url, "model.official.sha256": sha256}
    changes["model.encoder"] = "resnet50"  # the authors' network
    project = make_project(tmp_path / "project", changes)
    # The sizes are in params.yaml here; a user adds them with -S as the refusal says.
    result = run(["dvc", "exp", "run", *OFFICIAL], project)
    assert "error" not in result.stderr.lower(), result.stderr
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert {"laina", "eigen", "crop"} <= metrics.keys()
    assert all(np.isfinite(metrics[p]["rel"]) for p in ("laina", "eigen", "crop"))
    registration = json.loads((project / "reports/registration.json").read_text())
    assert registration["version"] >= 1
    assert (project / "data/downloads/NYU_FCRN-checkpoint.zip").is_file()

    from mlflow import MlflowClient  # the project's own store: sqlite mlflow.db

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    version = client.get_model_version(registration["registered_model"], registration["version"])
    tags = client.get_run(version.run_id).data.tags
    assert (tags["weights.source"], tags["weights.sha256"]) == (url, sha256)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(elsewhere / "room.png")
    bin_dir = Path(sys.executable).parent
    model = project / "models/fcrn.pt"
    run([str(bin_dir / "fcrn-predict"), "--model", str(model), "--out", "o", "room.png"], elsewhere)
    with Image.open(elsewhere / "o/room.png") as im:
        assert im.size == (64, 48)
