"""Depth metrics and the laina / eigen / crop protocols against hand-computed values."""

import numpy as np
import pytest
import torch

from pipeline.metrics import (
    EIGEN_CROP,
    ProtocolMeter,
    crop_ground_truth,
    crop_metrics,
    crop_window_hw,
    depth_metrics,
    eigen_metrics,
    laina_metrics,
)

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


# --- The three protocols: what each scores and how it averages. ---

PAPER_WINDOW = (228, 304)  # crop_window_hw at the paper's 240x320 resize and 228x304 crop


def test_crop_window_matches_the_paper_and_scales_with_the_input():
    assert crop_window_hw((240, 320), (228, 304)) == PAPER_WINDOW
    assert crop_window_hw((102, 136), (96, 128)) == (226, 301)  # 225.9, 301.2 rounded
    assert crop_window_hw((64, 80), (64, 80)) == (240, 320)  # no crop: the whole frame


def test_crop_ground_truth_is_a_nearest_subsample_of_the_centre():
    rows, cols = np.mgrid[0:480, 0:640]
    out = crop_ground_truth((rows * 1000 + cols).astype(np.float32), PAPER_WINDOW)
    assert out.shape == PAPER_WINDOW
    i, j = np.mgrid[0:228, 0:304]
    # Output pixel (i, j) is one of the four full-frame pixels under frame pixel (6 + i, 8 + j).
    assert np.isin(out // 1000 - 2 * (6 + i), [0, 1]).all()
    assert np.isin(out % 1000 - 2 * (8 + j), [0, 1]).all()
    with pytest.raises(ValueError, match="480x640"):
        crop_ground_truth(np.ones((240, 320)), PAPER_WINDOW)


def test_perfect_inside_the_eigen_crop_is_perfect_under_eigen_only():
    gt = np.full((480, 640), 2.0)
    pred = np.full((480, 640), 4.0)  # 100 % off outside the crop
    pred[EIGEN_CROP] = 2.0
    eigen = eigen_metrics([pred], [gt])
    assert eigen["rel"] == 0.0 and eigen["delta1"] == 1.0
    outside = 1 - 426 * 560 / (480 * 640)
    laina = laina_metrics([pred], [gt])
    assert laina["rel"] == pytest.approx(outside)
    assert laina["delta1"] == pytest.approx(1 - outside)


def test_depth_beyond_10m_is_capped_under_eigen_only():
    gt = np.full((480, 640), 12.0)
    assert eigen_metrics([np.full((480, 640), 10.0)], [gt])["rel"] == 0.0
    assert laina_metrics([np.full((480, 640), 10.0)], [gt])["rel"] == pytest.approx(2 / 12)
    assert crop_metrics([np.full(PAPER_WINDOW, 10.0)], [gt], PAPER_WINDOW)["rel"] == pytest.approx(
        2 / 12
    )


def test_laina_weighs_pixels_eigen_and_crop_weigh_images():
    full_gt = np.full((480, 640), 2.0)  # every pixel valid, prediction 50 % off
    block_gt = np.zeros((480, 640))
    block_gt[200:280, 200:440] = 2.0  # 19,200 valid pixels inside every protocol's region
    gts = [full_gt, block_gt]
    laina = laina_metrics([np.full((480, 640), 3.0), np.full((480, 640), 2.0)], gts)
    assert laina["rel"] == pytest.approx(0.5 * 307_200 / (307_200 + 19_200))
    eigen = eigen_metrics([np.full((480, 640), 3.0), np.full((480, 640), 2.0)], gts)
    crop = crop_metrics([np.full(PAPER_WINDOW, 3.0), np.full(PAPER_WINDOW, 2.0)], gts, PAPER_WINDOW)
    assert eigen["rel"] == pytest.approx(0.25)
    assert crop["rel"] == pytest.approx(0.25)


def test_crop_scores_only_the_centre_window():
    gt = np.full((480, 640), 100.0)  # far off everywhere the crop protocol does not look
    gt[12:468, 16:624] = 2.0  # the window: frame rows 6:234, cols 8:312, at full resolution
    crop = crop_metrics([np.full(PAPER_WINDOW, 2.0)], [gt], PAPER_WINDOW)
    assert crop == dict.fromkeys(crop, 0.0) | {"delta1": 1.0, "delta2": 1.0, "delta3": 1.0}
    outside = 1 - 456 * 608 / (480 * 640)
    laina = laina_metrics([np.full((480, 640), 2.0)], [gt])
    assert laina["rel"] == pytest.approx(outside * 98 / 100)


def test_protocol_meter_streams_and_checks_sizes():
    meter = ProtocolMeter("laina")
    gts = [np.full((480, 640), 2.0), np.full((480, 640), 4.0)]
    preds = [np.full((480, 640), 3.0), np.full((480, 640), 4.0)]
    for pred, gt in zip(preds, gts, strict=True):
        meter.add(torch.tensor(pred), gt)
    assert meter.result() == laina_metrics(preds, gts)
    with pytest.raises(ValueError, match="crop protocol needs a 228x304 pred"):
        ProtocolMeter("crop", PAPER_WINDOW).add(preds[0], gts[0])
    with pytest.raises(ValueError, match="laina protocol needs a 480x640 pred"):
        meter.add(np.ones(PAPER_WINDOW), gts[0])
    with pytest.raises(ValueError, match="window_hw"):
        ProtocolMeter("crop")
    with pytest.raises(ValueError, match="unknown protocol"):
        ProtocolMeter("kitti")
    with pytest.raises(ValueError, match="no images"):
        ProtocolMeter("eigen").result()
