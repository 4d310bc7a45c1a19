"""Depth metrics and the three NYU evaluation protocols, all built on one definition.

Every metric is a mean over valid pixels (gt > 0), so each is computed from a sum and a count
(`_sums`, `_finalize`). `depth_metrics` uses one image's sums; the protocols differ only in what
they score and how they average:

- laina (the paper's table): prediction at 480x640 vs the full ground truth, no crop, no cap,
  the sums of all images added (one global pixel mean, float64).
- eigen: 480x640, the Eigen crop, gt capped and prediction clipped to [1e-3, 10] m, per-image
  metrics averaged over images.
- crop (what most PyTorch ports report): ground truth nearest-resized to 240x320 and cut to the
  window the network saw (228x304 at the paper's sizes), prediction at that size, per-image mean.

`ProtocolMeter` scores one protocol over a stream of images, so a test set is never held in
memory; `laina_metrics`, `eigen_metrics` and `crop_metrics` score lists.

Predictions are clipped below at PRED_MIN (1e-6 m) before every metric, so a ReLU output of
exactly 0 gives a large but finite log error instead of -inf; positive depths of a
micrometre or more are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # metrics take tensors too, without importing torch (train_log reads KEYS)
    import torch

KEYS = ("rel", "rms", "rms_log", "log10", "delta1", "delta2", "delta3")
PRED_MIN = 1e-6
EIGEN_CROP = (slice(45, 471), slice(41, 601))  # rows, cols of a 480x640 image (Eigen et al.)
EIGEN_RANGE = (1e-3, 10.0)  # metres; gt capped and pred clipped to it
FULL_HW = (480, 640)  # NYU frames: every protocol starts from this ground truth
CROP_FRAME_HW = (240, 320)  # the crop protocol's frame: the full frame downsampled by 0.5
PROTOCOLS = ("laina", "eigen", "crop")


def _as_array(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch.Tensor
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


def crop_window_hw(resize_hw: tuple[int, int], crop_hw: tuple[int, int]) -> tuple[int, int]:
    """The network's input window in the 240x320 frame (228x304 at the paper's sizes).

    The network sees a ``crop_hw`` centre crop of the frame resized to ``resize_hw``; the crop
    protocol scores the same fraction of the 240x320 frame, whatever the training resolution.
    """
    frame_h, frame_w = CROP_FRAME_HW
    return round(frame_h * crop_hw[0] / resize_hw[0]), round(frame_w * crop_hw[1] / resize_hw[1])


def crop_ground_truth(
    depth_full: np.ndarray | torch.Tensor, window_hw: tuple[int, int]
) -> np.ndarray:
    """480x640 ground truth -> the crop protocol's: nearest-resized to 240x320 (as preprocessing
    resizes depth: no depth invented across object edges), then the centre ``window_hw``."""
    gt = np.asarray(_as_array(depth_full), dtype=np.float32)
    if gt.shape != FULL_HW:
        raise ValueError(f"crop protocol needs 480x640 ground truth, got {gt.shape}")
    (frame_h, frame_w), (h, w) = CROP_FRAME_HW, window_hw
    if not (0 < h <= frame_h and 0 < w <= frame_w):
        raise ValueError(f"crop window {h}x{w} does not fit the {frame_h}x{frame_w} frame")
    frame = np.asarray(Image.fromarray(gt).resize((frame_w, frame_h), Image.Resampling.NEAREST))
    top, left = (frame_h - h) // 2, (frame_w - w) // 2
    return frame[top : top + h, left : left + w]


class _PixelMean:
    """Sums over every valid pixel of every image added: one global pixel mean."""

    def __init__(self) -> None:
        self._total: dict = dict.fromkeys(KEYS, 0.0)
        self._count = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        sums, n = _sums(pred, gt)
        self._total = {k: self._total[k] + sums[k] for k in KEYS}
        self._count += n

    def result(self) -> dict[str, float]:
        return _finalize(self._total, self._count)


class _ImageMean:
    """Per-image metrics averaged over images: every image weighs the same, however many of its
    pixels are valid."""

    def __init__(self) -> None:
        self._per_image: list[dict[str, float]] = []

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        self._per_image.append(depth_metrics(pred, gt))

    def result(self) -> dict[str, float]:
        if not self._per_image:
            raise ValueError("no images to average over")
        return {k: float(np.mean([m[k] for m in self._per_image])) for k in KEYS}


class ProtocolMeter:
    """One protocol's metrics over a stream of (prediction, 480x640 ground truth) pairs.

    Predictions must already have the protocol's size, ``pred_hw``: 480x640 for laina and eigen,
    ``window_hw`` (see `crop_window_hw`) for crop, which alone takes that argument.
    """

    def __init__(self, protocol: str, window_hw: tuple[int, int] | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}: expected one of {PROTOCOLS}")
        if (protocol == "crop") != (window_hw is not None):
            raise ValueError("window_hw is required by the crop protocol and only by it")
        self.protocol = protocol
        self.pred_hw: tuple[int, int] = tuple(window_hw) if window_hw else FULL_HW
        self._mean = _PixelMean() if protocol == "laina" else _ImageMean()

    def add(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        """Score one image: ``pred`` of shape ``pred_hw``, ``gt`` the original 480x640 depth."""
        pred, gt = _as_array(pred), _as_array(gt)
        if pred.shape != self.pred_hw or gt.shape != FULL_HW:
            h, w = self.pred_hw
            raise ValueError(
                f"{self.protocol} protocol needs a {h}x{w} pred and 480x640 gt, "
                f"got {pred.shape}, {gt.shape}"
            )
        if self.protocol == "eigen":
            lo, hi = EIGEN_RANGE
            pred, gt = np.clip(pred[EIGEN_CROP], lo, hi), gt[EIGEN_CROP]
            gt = np.where(gt > 0, np.clip(gt, lo, hi), 0.0)  # missing gt stays missing
        elif self.protocol == "crop":
            gt = crop_ground_truth(gt, self.pred_hw)
        self._mean.add(pred, gt)

    def result(self) -> dict[str, float]:
        return self._mean.result()


def _score(meter: _PixelMean | ProtocolMeter, preds: Iterable, gts: Iterable) -> dict[str, float]:
    for pred, gt in zip(preds, gts, strict=True):
        meter.add(pred, gt)
    return meter.result()


def laina_metrics(preds: Iterable, gts: Iterable) -> dict[str, float]:
    """Paper protocol: one mean over all valid pixels of all images (no crop, no cap).

    Any equal pred/gt shapes: training-time validation scores the processed crops this way.
    """
    return _score(_PixelMean(), preds, gts)


def eigen_metrics(preds: Iterable, gts: Iterable) -> dict[str, float]:
    """Eigen protocol: 480x640 images, Eigen crop, gt and pred clipped to EIGEN_RANGE, per-image
    metrics averaged over images. Missing gt (<= 0) stays invalid rather than being capped."""
    return _score(ProtocolMeter("eigen"), preds, gts)


def crop_metrics(preds: Iterable, gts: Iterable, window_hw: tuple[int, int]) -> dict[str, float]:
    """Crop protocol: ``window_hw`` predictions vs 480x640 gts cut by `crop_ground_truth`,
    per-image metrics averaged over images."""
    return _score(ProtocolMeter("crop", window_hw), preds, gts)
