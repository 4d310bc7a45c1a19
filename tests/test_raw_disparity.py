"""depth_rel2depth_abs.m by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.raw.disparity import depth_abs2depth_rel, depth_rel2depth_abs


def test_disparity_to_metres_by_hand():
    d = np.array([600.0, 800.0, 1000.0, 1092.5, 1093.0, 2047.0, 0.0, 1090.0])
    m = depth_rel2depth_abs(d)
    assert m[0] == pytest.approx(351.3 / 492.5)  # 0.7133 m, the nearest the toolbox keeps
    assert m[1] == pytest.approx(351.3 / 292.5)  # 1.2010 m
    assert m[2] == pytest.approx(351.3 / 92.5)  # 3.7978 m
    assert m[3] == 10.0  # 351.3 / 0 = inf, clamped to maxDepth
    assert m[4] == 0.0 and m[5] == 0.0  # negative (2047 = no return) -> 0
    assert m[6] == pytest.approx(351.3 / 1092.5)  # 0 is not special here: 0.32 m
    assert m[7] == 10.0  # 140.5 m, clamped


def test_inverse_round_trips():
    z = np.array([0.72, 1.0, 2.5, 9.9])
    np.testing.assert_allclose(depth_rel2depth_abs(depth_abs2depth_rel(z)), z, rtol=1e-12)
