"""Score a trained model on the test split under every protocol, next to a constant baseline.

A number means little without its protocol (FCRN ports disagree mostly about *how* they score),
so all three are computed in one pass and reported under their own names; ``eval.protocol``
only picks the headline. The baseline predicts the train-set mean depth everywhere: a model
must beat it by a wide margin before its numbers say anything.

The test split is streamed in batches of ``eval.batch_size``: at NYU size its 480x640 ground
truth alone is ~800 MB. Nothing machine- or time-dependent enters the result, so the same model
and data give the same metrics.json bytes (DVC hashes it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline import portable
from pipeline.config import EvalConfig
from pipeline.data.augment import to_input
from pipeline.data.dataset import mean_depth
from pipeline.inference import predict_depth
from pipeline.metrics import (
    FULL_HW,
    KEYS,
    PROTOCOLS,
    ProtocolMeter,
    crop_ground_truth,
    crop_window_hw,
)
from pipeline.model.io import load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One test image for predictions.png, at the crop protocol's window (what the net saw)."""

    index: int  # 0-based image index in the NYU labeled set
    rgb: np.ndarray  # (h, w, 3) uint8, the network's input
    gt: np.ndarray  # crop-protocol ground truth, metres, 0 = missing
    pred: np.ndarray  # prediction at the same size, metres


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]  # the metrics.json document
    examples: list[Example]


def example_rows(num_images: int, num_examples: int) -> list[int]:
    """``num_examples`` rows evenly spaced over the split, first and last included (distinct:
    the spacing is at least 1)."""
    k = min(num_examples, num_images)
    return np.linspace(0, num_images - 1, k).round().astype(int).tolist()


def _device() -> tuple[torch.device, torch.dtype | None]:
    """CUDA with bf16 autocast when present, else fp32 on the CPU (CPU bf16 is often emulated)."""
    if torch.cuda.is_available():
        # Autotuned or nondeterministic kernels would change metrics.json from run to run.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), None


Network = Callable[[np.ndarray], torch.Tensor]  # (N, h, w, 3) uint8 -> (N, h', w') metres


def _network(
    model_path: os.PathLike[str] | str,
    device: torch.device,
    dtype: torch.dtype | None,
    in_hw: tuple[int, int],
) -> Network:
    """The model's forward at its own output resolution: a model file on ``device``, or an
    exported ``.onnx`` file on onnxruntime's CPU provider (scored exactly as the PyTorch one)."""
    if str(model_path).endswith(".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

        def run_onnx(rgb: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"rgb": to_input(rgb).numpy()})[0][:, 0])

        return run_onnx
    model = load_model(model_path, device)
    with torch.no_grad():  # the network's own output size (about half of the input)
        native_hw = tuple(model(torch.zeros(1, 3, *in_hw, device=device)).shape[-2:])
    return lambda rgb: predict_depth(model, to_input(rgb), native_hw, dtype)


def _resize(depth: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    """(N, h, w) -> (N, *hw) bilinear, as `predict_depth` and the paper's evaluation upsample."""
    out = F.interpolate(depth[:, None], size=hw, mode="bilinear", align_corners=False)
    return out[:, 0].cpu().numpy()


def _meters(window_hw: tuple[int, int]) -> dict[str, ProtocolMeter]:
    return {p: ProtocolMeter(p, window_hw if p == "crop" else None) for p in PROTOCOLS}


def _test_layout(h5: h5py.File, path: os.PathLike[str] | str) -> tuple[tuple[int, int], ...]:
    """(resize_hw, crop_hw) of a processed test file, after checking it has what we read."""
    missing = [k for k in ("rgb", "depth_full", "index") if k not in h5]
    missing += [f"attribute {a}" for a in ("resize_hw", "crop_hw") if a not in h5.attrs]
    if missing:
        raise ValueError(f"{path}: not a processed test file (missing {', '.join(missing)})")
    resize_hw, crop_hw = (tuple(int(v) for v in h5.attrs[a]) for a in ("resize_hw", "crop_hw"))
    rgb, full = h5["rgb"], h5["depth_full"]
    if len(rgb) == 0:
        raise ValueError(f"{path}: no test images")
    if rgb.shape[1:] != (*crop_hw, 3) or full.shape[1:] != FULL_HW or len(full) != len(rgb):
        raise ValueError(
            f"{path}: rgb {rgb.shape} and depth_full {full.shape} do not match crop_hw {crop_hw}"
        )
    return resize_hw, crop_hw


def evaluate(
    model_path: os.PathLike[str] | str,
    test_h5: os.PathLike[str] | str,
    train_h5: os.PathLike[str] | str,
    cfg: EvalConfig,
    reproducible: portable.Mode = "native",
) -> Evaluation:
    """The model (a model file, or its ONNX export) and the train-mean baseline under every
    protocol, plus the examples to plot; ``reproducible`` as training's (`pipeline.portable`)."""
    device, autocast_dtype = _device()
    follows = portable.check(reproducible, device)["bytes_follow"]  # its thread count, too
    baseline_depth = mean_depth(train_h5)
    with h5py.File(test_h5, "r") as h5:
        resize_hw, crop_hw = _test_layout(h5, test_h5)
        window_hw = crop_window_hw(resize_hw, crop_hw)
        rgb, depth_full, index = h5["rgb"], h5["depth_full"], h5["index"][:]
        n = len(rgb)
        model_meters, base_meters = _meters(window_hw), _meters(window_hw)
        sizes = {m.pred_hw for m in model_meters.values()}
        constant = {hw: np.full(hw, baseline_depth) for hw in sizes}
        network = _network(model_path, device, autocast_dtype, crop_hw)
        precision = "bf16" if autocast_dtype else "fp32"
        log.info("evaluating on %s (%s); bytes follow %s", device.type, precision, follows)
        shown = set(example_rows(n, cfg.num_examples))
        examples = []
        for start in tqdm(range(0, n, cfg.batch_size), desc="evaluate", unit="batch"):
            stop = min(start + cfg.batch_size, n)
            batch_rgb = rgb[start:stop]
            native = network(batch_rgb)
            preds = {hw: _resize(native, hw) for hw in sizes}
            for j, gt in enumerate(depth_full[start:stop]):
                for p in PROTOCOLS:
                    hw = model_meters[p].pred_hw
                    model_meters[p].add(preds[hw][j], gt)
                    base_meters[p].add(constant[hw], gt)
                if start + j in shown:
                    gt_crop = crop_ground_truth(gt, window_hw)
                    pred_crop = preds[window_hw][j].copy()  # not a view: the batch can go
                    examples.append(
                        Example(int(index[start + j]), batch_rgb[j].copy(), gt_crop, pred_crop)
                    )
    results = {p: model_meters[p].result() for p in PROTOCOLS}
    metrics = {
        **results[cfg.protocol],
        "protocol": cfg.protocol,
        **results,
        "baseline": {
            "mean_depth_m": baseline_depth,
            **{p: base_meters[p].result() for p in PROTOCOLS},
        },
        "num_test_images": n,
    }
    return Evaluation(metrics, examples)


def metrics_json(metrics: dict[str, Any]) -> str:
    """metrics.json text: the headline first, in the order `evaluate` built it (not sorted)."""
    return json.dumps(metrics, indent=2) + "\n"


def summarize(metrics: dict[str, Any]) -> str:
    """A few lines for the terminal: the headline protocol's metrics against the baseline."""
    protocol, baseline = metrics["protocol"], metrics["baseline"]
    lines = [
        f"{metrics['num_test_images']} test images, {protocol} protocol "
        f"(all three in metrics.json)",
        f"{'metric':<8} {'model':>8} {'baseline':>9}  (baseline: {baseline['mean_depth_m']:.3f} m "
        f"everywhere)",
    ]
    lines += [f"{k:<8} {metrics[k]:>8.4f} {baseline[protocol][k]:>9.4f}" for k in KEYS]
    return "\n".join(lines)
