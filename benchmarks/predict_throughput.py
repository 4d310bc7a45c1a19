"""`fcrn-predict` against the network it runs: folder rate, network-alone rate, first depth.

Prints one JSON object. In this process, on the same generated 640x480 photos and one model file
(random weights of the configured architecture at params.yaml's frame size):

- ``network_images_per_s``: the network alone (forward only, fp32, the input already a tensor) at
  each batch of ``--batches``; ``network_best`` is the best of them;
- ``folder_images_per_s``: `fcrn-predict`'s own entry point on a folder of ``--large`` photos minus
  one of ``--small`` photos (start-up and model loading drop out of the difference);
  ``folder_vs_network`` is its ratio to ``network_best``;
- ``onnxruntime_images_per_s``: the exported ONNX model on onnxruntime's CPU provider at the best
  batch (absent when `pipeline.onnx_export` is not there);
- ``first_depth_s``: wall time of a fresh ``fcrn-predict`` process for one photo, from the model
  file and from an MLflow registry (a SQLite store in a temporary folder); the best of
  ``--repeats``.

    .venv/bin/python benchmarks/predict_throughput.py > benchmarks/predict_throughput.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.config import load_params
from pipeline.model.fcrn import FCRN
from pipeline.model.io import save_model
from pipeline.predict import cli

BIN = Path(sys.executable).parent


def _photos(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` 640x480 JPEGs that compress like photos (smooth shading plus mild noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    for i in range(n):
        base = np.stack([np.sin(xx / (40 + 7 * c) + i) * np.cos(yy / 55) for c in range(3)], -1)
        rgb = np.clip(128 + 100 * base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"photo{i:03d}.jpg", quality=90)
    return folder


def _network_rates(model: torch.nn.Module, hw: tuple[int, int], batches: list[int]) -> dict:
    """Forward-only images/s per batch size: median of 5 timed calls after a warm-up."""
    rates = {}
    with torch.no_grad():
        for b in batches:
            x = torch.rand(b, 3, *hw)
            model(x)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
            rates[str(b)] = round(b / float(np.median(times)), 2)
    return rates


def _run_cli(argv: list[str]) -> float:
    """Seconds `fcrn-predict`'s entry point takes in this process (its output discarded)."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli(argv)
    return time.perf_counter() - start


def _folder_rate(model: Path, root: Path, small: int, large: int, batch: int | None) -> float:
    few, many = _photos(root / "few", small), _photos(root / "many", large)
    extra = ["--batch-size", str(batch)] if batch else []
    t_few = _run_cli(["--model", str(model), "--out", str(root / "o1"), str(few), *extra])
    t_many = _run_cli(["--model", str(model), "--out", str(root / "o2"), str(many), *extra])
    return (large - small) / (t_many - t_few)


def _first_depth(model: str, photo: Path, out: Path, env: dict[str, str], repeats: int) -> float:
    """Best wall time of a fresh `fcrn-predict` process for one photo."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        cmd = [str(BIN / "fcrn-predict"), "--model", model, "--out", str(out), str(photo)]
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return round(min(times), 2)


def _registry_env(model_file: Path, root: Path, input_hw: tuple[int, int]) -> dict[str, str]:
    """A SQLite MLflow store in ``root`` whose model `bench@champion` is ``model_file``."""
    import mlflow

    from pipeline.served_model import log_model

    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench")
    with contextlib.redirect_stdout(io.StringIO()), mlflow.start_run():
        uri = log_model(model_file, input_hw, onnx=False)  # its first depth reads pt2 only
        version = mlflow.register_model(uri, "bench").version
    mlflow.MlflowClient().set_registered_model_alias("bench", "champion", version)
    return env


def _onnx_rate(model_file: Path, root: Path, hw: tuple[int, int], batch: int) -> float | None:
    try:
        import onnxruntime as ort

        from pipeline.onnx_export import export_onnx
    except ImportError:
        return None
    dest = root / "fcrn.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        export_onnx(str(model_file), dest)
    session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((batch, 3, *hw), dtype=np.float32)
    name = session.get_inputs()[0].name
    session.run(None, {name: x})
    times = []
    for _ in range(5):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return round(batch / float(np.median(times)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--small", type=int, default=8)
    parser.add_argument("--large", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2, help="first-depth runs (best taken)")
    parser.add_argument("--batch-size", type=int, help="fcrn-predict --batch-size (new code)")
    parser.add_argument("--no-registry", action="store_true", help="skip the registry timing")
    args = parser.parse_args()
    params = load_params()
    hw = tuple(params.data.preprocess.resize_hw)
    torch.manual_seed(0)
    net = FCRN(decoder=params.model.decoder, fast=params.model.fast, out_bias=2.0).eval()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_file = root / "fcrn.pt"
        config = {"decoder": params.model.decoder, "fast": params.model.fast, "out_bias": 2.0}
        save_model(net, config, model_file, hw, tuple(params.data.preprocess.crop_hw))
        network = _network_rates(net, hw, args.batches)
        best_batch, best = max(network.items(), key=lambda kv: kv[1])
        folder = _folder_rate(model_file, root, args.small, args.large, args.batch_size)
        photo = _photos(root / "one", 1, seed=1) / "photo000.jpg"
        first = {"model_file": _first_depth(str(model_file), photo, root / "o3", dict(os.environ),
                                            args.repeats)}  # fmt: skip
        if not args.no_registry:
            env = _registry_env(model_file, root, hw)
            first["registry"] = _first_depth("models:/bench@champion", photo, root / "o4", env,
                                             args.repeats)  # fmt: skip
        onnx_rate = _onnx_rate(model_file, root, hw, int(best_batch))
    result = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "input_hw": list(hw),
        "photo_hw": [480, 640],
        "network_images_per_s": network,
        "network_best": {"batch": int(best_batch), "images_per_s": best},
        "folder_images_per_s": round(folder, 2),
        "folder_vs_network": round(folder / best, 3),
        "onnxruntime_images_per_s": onnx_rate,
        "first_depth_s": first,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
