"""Depth metrics (DESIGN §6) and the two NYU evaluation protocols built on one definition.

Every metric is a mean over valid pixels (gt > 0), so each is computed from a sum and a count
(`_sums`, `_finalize`). `depth_metrics` uses one image's sums; `laina_metrics` adds the sums of
all images (one global pixel mean); `eigen_metrics` averages per-image `depth_metrics`.

Predictions are clipped below at PRED_MIN (1e-6 m) before every metric, so a ReLU output of
exactly 0 gives a large but finite log error instead of -inf; positive depths of a
micrometre or more are unchanged.
"""

from collections.abc import Iterable

import numpy as np
import torch

KEYS = ("rel", "rms", "rms_log", "log10", "delta1", "delta2", "delta3")
PRED_MIN = 1e-6
EIGEN_CROP = (slice(45, 471), slice(41, 601))  # rows, cols of a 480x640 image (Eigen et al.)
EIGEN_RANGE = (1e-3, 10.0)  # metres; gt capped and pred clipped to it


def _as_array(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _sums(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> tuple[dict, int]:
    """Per-metric sums over the valid pixels of one image (or batch) and the pixel count."""
    pred, gt = _as_array(pred), _as_array(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} != gt shape {gt.shape}")
    valid = gt > 0
    d, g = pred[valid], gt[valid]
    if not (np.isfinite(d).all() and np.isfinite(g).all()):
        raise ValueError("pred or gt has non-finite values at valid pixels (gt > 0)")
    d = np.maximum(d, PRED_MIN)
    ratio = np.maximum(d / g, g / d)
    log_diff = np.log(d) - np.log(g)
    sums = {
        "rel": np.sum(np.abs(d - g) / g),
        "rms": np.sum((d - g) ** 2),
        "rms_log": np.sum(log_diff**2),
        "log10": np.sum(np.abs(log_diff)) / np.log(10),
        **{f"delta{k}": np.count_nonzero(ratio < 1.25**k) for k in (1, 2, 3)},
    }
    return sums, int(d.size)


def _finalize(sums: dict, count: int) -> dict[str, float]:
    if count == 0:
        raise ValueError("no valid pixels (gt > 0): metrics are undefined")
    means = {k: float(v) / count for k, v in sums.items()}
    for k in ("rms", "rms_log"):
        means[k] = float(np.sqrt(means[k]))
    return {k: means[k] for k in KEYS}


def depth_metrics(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor
) -> dict[str, float]:
    """rel, rms, rms_log, log10, delta1..3 over pixels with gt > 0 (arrays of equal shape, m)."""
    return _finalize(*_sums(pred, gt))


def laina_metrics(preds: Iterable, gts: Iterable) -> dict[str, float]:
    """Paper protocol: one mean over all valid pixels of all images (no crop, no cap)."""
    total: dict = dict.fromkeys(KEYS, 0.0)
    count = 0
    for pred, gt in zip(preds, gts, strict=True):
        sums, n = _sums(pred, gt)
        total = {k: total[k] + sums[k] for k in KEYS}
        count += n
    return _finalize(total, count)


def eigen_metrics(preds: Iterable, gts: Iterable) -> dict[str, float]:
    """Eigen protocol: 480x640 images, Eigen crop, gt and pred clipped to EIGEN_RANGE, per-image
    metrics averaged over images. Missing gt (<= 0) stays invalid rather than being capped."""
    lo, hi = EIGEN_RANGE
    per_image = []
    for pred, gt in zip(preds, gts, strict=True):
        pred, gt = _as_array(pred), _as_array(gt)
        if gt.shape != (480, 640) or pred.shape != gt.shape:
            raise ValueError(
                f"eigen protocol needs 480x640 pred and gt, got {pred.shape}, {gt.shape}"
            )
        pred, gt = pred[EIGEN_CROP], gt[EIGEN_CROP]
        gt = np.where(gt > 0, np.clip(gt, lo, hi), 0.0)
        per_image.append(depth_metrics(np.clip(pred, lo, hi), gt))
    if not per_image:
        raise ValueError("eigen protocol got no images")
    return {k: float(np.mean([m[k] for m in per_image])) for k in KEYS}
