"""depth_rel2depth_abs.m and the toolbox's pixel grid, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.raw.camera import DEPTH, RGB
from pipeline.data.raw.disparity import depth_abs2depth_rel, depth_rel2depth_abs
from pipeline.data.raw.geometry import depth_plane2depth_world, rgb_world2rgb_plane


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


def test_depth_points_use_the_one_based_grid_in_column_major_order():
    depth = np.zeros((480, 640))
    depth[0, 0], depth[1, 0], depth[0, 1] = 2.0, 3.0, 4.0
    points = depth_plane2depth_world(depth)
    # Pixel (row 1, column 1) in MATLAB terms: x = (1 - cx) * z / fx.
    assert points[0].tolist() == pytest.approx(
        [(1 - DEPTH.cx) * 2.0 / DEPTH.fx, (1 - DEPTH.cy) * 2.0 / DEPTH.fy, 2.0]
    )
    # Column-major: the second point is row 2 of column 1, the 481st is row 1 of column 2.
    assert points[1, 2] == 3.0 and points[480, 2] == 4.0
    assert points[1, 1] == pytest.approx((2 - DEPTH.cy) * 3.0 / DEPTH.fy)


def test_rgb_plane_projection_by_hand():
    x, y = rgb_world2rgb_plane(np.array([[0.1, -0.2, 2.0]]))
    assert x[0] == pytest.approx(0.1 * RGB.fx / 2.0 + RGB.cx)
    assert y[0] == pytest.approx(-0.2 * RGB.fy / 2.0 + RGB.cy)
