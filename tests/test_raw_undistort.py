"""undistort.m / undistort_depth.m: Bouguet's rect, bilinear, 0-based grid, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.raw.camera import RGB, Camera
from pipeline.data.raw.undistort import apply_distortion, undistort, undistort_depth

# A 3x4 frame seen through a small camera; output pixel (row 1, col 1) is the 0-based ray
# x = (1 - 1.5) / 10 = -0.05, y = (1 - 1) / 10 = 0, so r2 = 0.0025 and, with k1 = 0.1, p1 = 0.01:
# xd = -0.05 * (1 + 0.1 * 0.0025) + 0.01 * 2 * x * y = -0.0500125, yd = 0.01 * (r2 + 2 y^2) = 2.5e-5
# -> source (10 * xd + 1.5, 10 * yd + 1) = (0.999875, 1.00025): between rows 1-2 and columns 0-1.
SMALL = Camera(fx=10.0, fy=10.0, cx=1.5, cy=1.0, k=(0.1, 0.0, 0.01, 0.0, 0.0))
AX, AY = 0.999875, 0.00025
W_LU, W_RU, W_LD, W_RD = (1 - AY) * (1 - AX), (1 - AY) * AX, AY * (1 - AX), AY * AX
IMAGE = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]])


def test_apply_distortion_by_hand():
    k1, k2, p1, p2, k3 = 0.1, -0.2, 0.01, -0.02, 0.3
    x, y = np.array([0.3]), np.array([-0.4])
    r2 = 0.25
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd, yd = apply_distortion(x, y, (k1, k2, p1, p2, k3))
    assert xd[0] == pytest.approx(0.3 * radial + p1 * 2 * 0.3 * -0.4 + p2 * (r2 + 2 * 0.09))
    assert yd[0] == pytest.approx(-0.4 * radial + p1 * (r2 + 2 * 0.16) + p2 * 2 * 0.3 * -0.4)


def test_undistort_samples_bilinearly_at_the_distorted_position():
    out = undistort(IMAGE, SMALL)
    expected = W_LU * 5.0 + W_RU * 6.0 + W_LD * 9.0 + W_RD * 10.0
    assert out[1, 1] == pytest.approx(expected, abs=1e-12)
    # Pixel (0, 0) reads from x = 10 * (-0.15 * 1.00325) + 1.5 = -0.004875 < 0: outside -> 255.
    assert out[0, 0] == 255.0
    # The last column can never be a left neighbour: (2, 3) reads from x ~ 3.005 -> 255.
    assert out[2, 3] == 255.0


def test_undistort_channels_alike():
    rgb = np.stack([IMAGE, 2 * IMAGE, 3 * IMAGE], axis=-1)
    out = undistort(rgb, SMALL)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], undistort(rgb[..., c], SMALL))


def test_undistort_rgb_camera_pixel_by_hand():
    image = np.random.default_rng(1).uniform(0, 255, (480, 640))
    u, v = 200, 100  # 0-based output pixel
    x, y = (u - RGB.cx) / RGB.fx, (v - RGB.cy) / RGB.fy
    k1, k2, p1, p2, k3 = RGB.k
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    px = RGB.fx * (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)) + RGB.cx
    py = RGB.fy * (y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y) + RGB.cy
    i, j = int(np.floor(py)), int(np.floor(px))
    ax, ay = px - j, py - i
    expected = (
        (1 - ay) * (1 - ax) * image[i, j]
        + (1 - ay) * ax * image[i, j + 1]
        + ay * (1 - ax) * image[i + 1, j]
        + ay * ax * image[i + 1, j + 1]
    )
    assert undistort(image, RGB)[v, u] == pytest.approx(expected, abs=1e-9)


def test_undistort_depth_leaves_masked_neighbours_out():
    mask = np.zeros(IMAGE.shape, dtype=bool)
    mask[1, 1] = True  # the right-upper neighbour of output (1, 1)
    out = undistort_depth(IMAGE, SMALL, mask)
    expected = (W_LU * 5.0 + W_LD * 9.0 + W_RD * 10.0) / (W_LU + W_LD + W_RD)
    # (Small weights divided by their small sum: the literal AX is exact only to ~1e-16.)
    assert out[1, 1] == pytest.approx(expected, rel=1e-9)
    assert out[0, 0] == 0.0  # outside: 0, not undistort's 255


def test_undistort_depth_without_a_valid_neighbour_is_zero():
    mask = np.zeros(IMAGE.shape, dtype=bool)
    mask[1:3, 0:2] = True  # all four neighbours of output (1, 1)
    assert undistort_depth(IMAGE, SMALL, mask)[1, 1] == 0.0
    # Without a mask it is plain bilinear, like undistort inside the frame.
    plain = undistort_depth(IMAGE, SMALL, np.zeros(IMAGE.shape, dtype=bool))
    assert plain[1, 1] == pytest.approx(undistort(IMAGE, SMALL)[1, 1], abs=1e-12)
