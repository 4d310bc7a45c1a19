"""depth_plane2depth_world.m and rgb_world2rgb_plane.m by hand: the 1-based grid, the order."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.raw.camera import DEPTH, RGB
from pipeline.data.raw.geometry import depth_plane2depth_world, rgb_world2rgb_plane


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
