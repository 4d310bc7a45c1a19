"""Depth metrics and the laina / eigen protocols against hand-computed values."""

import numpy as np
import pytest
import torch

from pipeline.metrics import depth_metrics, eigen_metrics, laina_metrics

# Valid pairs (pred, gt): (1, 1), (1, 2), (5, 4); the last pixel has no ground truth.
PRED = np.array([[1.0, 1.0], [5.0, 7.0]])
GT = np.array([[1.0, 2.0], [4.0, 0.0]])
EXPECTED = {
    "rel": (0 + 1 / 2 + 1 / 4) / 3,
    "rms": 0.816496580927726,  # sqrt(2 / 3)
    "rms_log": 0.42041489761556533,  # sqrt((ln(2)^2 + ln(1.25)^2) / 3)
    "log10": 0.13264666955734586,  # log10(2.5) / 3
    "delta1": 1 / 3,  # ratios 1, 2, 1.25; the test is strict: 1.25 is not < 1.25
    "delta2": 2 / 3,
    "delta3": 2 / 3,
}


def test_depth_metrics_hand_computed():
    metrics = depth_metrics(PRED, GT)
    assert list(metrics) == ["rel", "rms", "rms_log", "log10", "delta1", "delta2", "delta3"]
    assert all(type(v) is float for v in metrics.values())
    assert metrics == pytest.approx(EXPECTED, abs=1e-12)


def test_depth_metrics_accepts_tensors():
    pred = torch.tensor(PRED, dtype=torch.float32, requires_grad=True)
    assert depth_metrics(pred, torch.tensor(GT)) == pytest.approx(EXPECTED, abs=1e-6)


def test_zero_prediction_is_clipped_not_infinite():
    metrics = depth_metrics(np.array([0.0]), np.array([1.0]))
    assert metrics["log10"] == pytest.approx(6.0)  # pred clipped to 1e-6 m
    assert metrics["rms_log"] == pytest.approx(13.815510557964275)
    assert metrics["delta3"] == 0.0


def test_depth_metrics_errors():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(4,\)"):
        depth_metrics(PRED, GT.ravel())
    with pytest.raises(ValueError, match="no valid pixels"):
        depth_metrics(PRED, np.zeros_like(GT))
    with pytest.raises(ValueError, match="non-finite"):
        depth_metrics(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))


def test_laina_is_one_global_pixel_mean():
    # Image 2 adds one perfect pixel: 4 valid pixels in all, errors summed then divided by 4.
    metrics = laina_metrics([PRED, np.array([2.0])], [GT, np.array([2.0])])
    assert metrics["rel"] == pytest.approx(0.75 / 4)
    assert metrics["rms"] == pytest.approx(np.sqrt(2 / 4))
    assert metrics["rms_log"] == pytest.approx(0.3640899814645134)
    assert metrics["delta1"] == pytest.approx(2 / 4)


def test_eigen_crops_caps_and_averages_per_image():
    gt1 = np.full((480, 640), 2.0)
    pred1 = gt1.copy()
    pred1[0, :] = 100.0  # outside the crop (rows 45:471): ignored
    gt1[100, 100], pred1[100, 100] = 15.0, 20.0  # both capped to 10 m: no error
    gt1[200, 200], pred1[200, 200] = 0.0, 5.0  # missing depth stays invalid, not capped to 1e-3
    gt2 = np.zeros((480, 640))
    gt2[45:100, 41:601] = 2.0  # far fewer valid pixels than image 1: per-image mean != global
    pred2 = np.full((480, 640), 3.0)
    metrics = eigen_metrics([pred1, pred2], [gt1, gt2])
    assert metrics["rel"] == pytest.approx((0 + 0.5) / 2)
    assert metrics["rms"] == pytest.approx((0 + 1) / 2)
    assert metrics["rms_log"] == pytest.approx(0.2027325540540822)  # ln(1.5) / 2
    assert metrics["delta1"] == pytest.approx(0.5)  # ratio 1.5 fails 1.25, passes 1.5625
    assert metrics["delta2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="480x640"):
        eigen_metrics([PRED], [GT])
