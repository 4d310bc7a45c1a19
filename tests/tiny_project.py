"""`TinyProject`: a project folder as `train` and `evaluate` leave it for `register`, without
running them (a random-weights model, hand-written metrics and reports): the registry, tracking,
predict and ONNX tests build on it in seconds."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from e2e import REPO, set_params, stage_argv
from PIL import Image

from pipeline.config import parse_params
from pipeline.identity import TrainingIdentity
from pipeline.model.fcrn import FCRN
from pipeline.model.io import save_model

METRIC_KEYS = ("rel", "rms", "rms_log", "log10", "delta1", "delta2", "delta3")


class TinyProject:
    """A project folder with what `train` and `evaluate` leave for `register`: a model file
    (random weights), metrics.json written by hand, reports, a training log and (stand-in) data,
    under git, with its own MLflow experiment and registered model names; ``changes`` (dotted
    keys) are set in its params.yaml on top."""

    def __init__(self, root: Path, name: str, changes: dict[str, object] | None = None) -> None:
        self.root = root
        token = secrets.token_hex(4)
        self.experiment, self.model_name = f"test-{name}-{token}", f"fcrn-{name}-{token}"
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["mlflow"] = {"experiment": self.experiment, "registered_model": self.model_name}
        params["mlflow"]["onnx"] = False  # the export takes a minute; tests/test_onnx.py does it
        params["data"]["preprocess"]["resize_hw"] = [48, 64]  # small frames: fast predictions
        params["data"]["preprocess"]["crop_hw"] = [48, 64]
        params["model"]["encoder"] = "resnet18"  # the model `write_model` writes
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        set_params(root / "params.yaml", changes or {})
        self.params_raw = yaml.safe_load((root / "params.yaml").read_text())
        self.train_h5 = root / "data/processed/train.h5"
        self.test_h5 = root / "data/processed/test.h5"
        self.model = root / "models/fcrn.pt"
        self.state_file = root / "checkpoints/mlflow_run.json"
        self.reports = root / "reports"
        self.train_h5.parent.mkdir(parents=True)
        self.train_h5.write_bytes(b"train split " + secrets.token_bytes(64))
        self.write_test_data("test split")
        self.reports.mkdir()
        rows = ["epoch,train_loss,lr,val_rel", "1,0.9,0.0003,0.5", "2,0.7,0.00015,0.4"]
        (self.reports / "train_log.csv").write_text("\n".join(rows) + "\n")
        for name, colour in (("predictions", "teal"), ("train_curves", "orange")):
            Image.new("RGB", (32, 24), colour).save(self.reports / f"{name}.png")
        (self.reports / "validation.json").write_text('{"success": true}\n')
        (self.reports / "validation.html").write_text("<html><body>ok</body></html>\n")
        self.write_metrics(0.2)
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "tiny project"]):
            git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *cmd]
            subprocess.run(git, cwd=root, check=True)

    def identity(self) -> TrainingIdentity:
        """The identity `register` gives this project's training (as `train.nproc` processes)."""
        params = parse_params(self.params_raw)
        return TrainingIdentity.of(params, self.train_h5, params.train.nproc)

    def write_test_data(self, content: str) -> None:
        """Stand-in test split: only its md5 matters to `register`."""
        self.test_h5.write_text(content)

    def write_model(self, out_bias: float) -> Path:
        """A model file; each ``out_bias`` gives other bytes (another model)."""
        torch.manual_seed(0)
        config = {"decoder": "upproj", "fast": True, "final_relu": True, "out_bias": out_bias}
        config["encoder"] = "resnet18"  # as `e2e.TINY`: a 55 MB model to register, not 255
        save_model(FCRN(**config), config, self.model)
        return self.model

    def write_metrics(self, rel: float, protocol: str = "laina") -> None:
        """metrics.json as `evaluate` lays it out, with headline ``rel`` under ``protocol``."""
        block = {k: round(rel * (i + 1), 6) for i, k in enumerate(METRIC_KEYS)}
        protocols = {p: {**block, "rel": rel} for p in ("laina", "eigen", "crop")}
        baseline = {p: {k: 1.0 for k in METRIC_KEYS} for p in protocols}
        metrics = {
            **protocols[protocol],
            "protocol": protocol,
            **protocols,
            "baseline": {"mean_depth_m": 2.5, **baseline},
            "num_test_images": 4,
        }
        (self.reports / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    def register(self) -> dict[str, object]:
        """Run the `register` stage script as DVC would; return registration.json."""
        script, *args = stage_argv("register")
        cmd = [sys.executable, str(REPO / script), *args]
        result = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"register failed:\n{result.stdout}\n{result.stderr}")
        return json.loads((self.reports / "registration.json").read_text())
