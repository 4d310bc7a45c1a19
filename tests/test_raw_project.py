"""project_depth_map.m: its rules one by one, one pixel through the whole chain by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.raw import camera, project_depth
from pipeline.data.raw.project import in_frame, matlab_round, zbuffer
from pipeline.data.raw.undistort import undistort

RGB_ZEROS = np.zeros((480, 640, 3), dtype=np.uint8)


def test_matlab_round_goes_half_away_from_zero():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999999999999996, 0.49999999999999994])
    assert matlab_round(x).tolist() == [1.0, 2.0, 3.0, -1.0, -3.0, 2.0, 0.0]


def test_bounds_leave_out_the_last_column_and_row():
    x = np.array([0.0, 1.0, 639.0, 640.0, 5.0, 5.0, 5.0, 5.0])
    y = np.array([5.0, 5.0, 5.0, 5.0, 0.0, 1.0, 479.0, 480.0])
    assert in_frame(x, y).tolist() == [False, True, True, False, False, True, True, False]


def test_zbuffer_nearer_point_wins_whatever_the_order():
    # Two points on 1-based pixel (x=3, y=2) -> array [1, 2]; the nearer (1.5 m) stays.
    for depth in ([1.5, 4.0], [4.0, 1.5]):
        out = zbuffer(np.array([3.0, 3.0]), np.array([2.0, 2.0]), np.array(depth), (4, 5))
        assert out[1, 2] == 1.5
        assert np.count_nonzero(out) == 1


def test_zbuffer_equals_the_toolbox_loop():
    # The toolbox's way, literally: sort by depth descending (stable), write one by one. Many
    # collisions and exact ties (depths on a 0.5 m grid).
    rng = np.random.default_rng(4)
    x, y = rng.integers(1, 6, 2000).astype(float), rng.integers(1, 4, 2000).astype(float)
    depth = rng.integers(1, 20, 2000) / 2
    expected = np.zeros((4, 6))
    for i in np.argsort(-depth, kind="stable"):
        expected[int(y[i]) - 1, int(x[i]) - 1] = depth[i]
    np.testing.assert_array_equal(zbuffer(x, y, depth, (4, 6)), expected)
    assert not expected[3].any() and not expected[:, 5].any()  # untouched pixels stay 0


def test_nearer_surface_wins_where_two_overlap_in_the_rgb_image():
    # Left half far (disparity 1000, 3.80 m), right half near (700, 0.895 m): seen from the RGB
    # camera, 2.5 cm to the side, the near half's edge covers some of the far half's pixels.
    def frame(left: int, right: int) -> np.ndarray:
        f = np.empty((480, 640), dtype=np.uint16)
        f[:, :320], f[:, 320:] = left, right
        f[0, 0] = 2047  # the frame maximum, so that 1000 is not taken for noise
        return f

    far = project_depth(frame(1000, 2047), RGB_ZEROS)[0] > 0
    near = project_depth(frame(2047, 700), RGB_ZEROS)[0] > 0
    both = near & far
    assert both.sum() > 100  # the overlap exists
    depth = project_depth(frame(1000, 700), RGB_ZEROS)[0]
    np.testing.assert_allclose(depth[both], 351.3 / (1092.5 - 700), rtol=1e-9)


def test_frame_maximum_is_noise():
    # A frame whose every pixel equals its maximum is all noise: nothing is projected.
    depth, _ = project_depth(np.full((480, 640), 800, dtype=np.uint16), RGB_ZEROS)
    assert not depth.any()
    frame = np.full((480, 640), 800, dtype=np.uint16)
    frame[0, 0] = 2047  # now 2047 is the maximum and 800 is valid
    depth, _ = project_depth(frame, RGB_ZEROS)
    assert depth.max() == pytest.approx(351.3 / 292.5)


def test_disparity_below_600_is_dropped():
    frame = np.full((480, 640), 599, dtype=np.uint16)
    frame[0, 0] = 2047
    assert not project_depth(frame, RGB_ZEROS)[0].any()
    frame[1:] = 600
    assert project_depth(frame, RGB_ZEROS)[0].max() == pytest.approx(351.3 / 492.5)


def test_rgb_is_undistorted_and_rounded_like_matlab_uint8():
    rgb = np.random.default_rng(2).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    _, out = project_depth(np.full((480, 640), 2047, dtype=np.uint16), rgb)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, matlab_round(undistort(rgb, camera.RGB)).astype(np.uint8))
    assert (out[0, 0] == 255).all()  # the corner reads from outside the frame: undistort's 255


def _hand_chain(row: int, col: int, disparity_of_x) -> tuple[float, int, int]:
    """Depth-camera pixel (0-based row, col) -> (z, 1-based RGB x, y), written out from the
    constants of camera_params.m and the formulas of each toolbox file."""
    fx, fy, cx, cy = (
        5.8262448167737955e02,
        5.8269103270988637e02,
        3.1304475870804731e02,
        2.3844389626620386e02,
    )
    k1, k2, p1, p2, k3 = (
        -9.9897236553084481e-02,
        3.9065324602765344e-01,
        1.9290592870229277e-03,
        -1.9422022475975055e-03,
        -5.1031725053400578e-01,
    )
    # undistort_depth.m: 0-based output pixel -> distorted source position.
    x, y = (col - cx) / fx, (row - cy) / fy
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    px = fx * (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)) + cx
    d = disparity_of_x(px)  # the frame is linear in x, so bilinear sampling is exact
    z = 351.3 / (1092.5 - d)  # depth_rel2depth_abs.m
    # depth_plane2depth_world.m: the 1-based grid.
    p = np.array([(col + 1 - cx) * z / fx, (row + 1 - cy) * z / fy, z])
    # depth_world2rgb_world.m with camera_params.m's R and T = [t_x; t_z; t_y].
    v = camera.ROTATION_VALUES
    r = np.linalg.inv(-np.array([[v[0], v[1], v[2]], [v[3], v[4], v[5]], [v[6], v[7], v[8]]]))
    q = r @ p + np.array([2.5031875059141302e-02, -2.9342312935846411e-04, 6.6238747008330102e-04])
    # rgb_world2rgb_plane.m, then MATLAB round (all positive here).
    xr = q[0] * 5.1885790117450188e02 / q[2] + 3.2558244941119034e02
    yr = q[1] * 5.1946961112127485e02 / q[2] + 2.5373616633400465e02
    return z, int(np.floor(xr + 0.5)), int(np.floor(yr + 0.5))


def test_one_pixel_through_the_whole_chain_by_hand():
    # Disparity rises by one per column (MATLAB column c holds 600 + c), so every column has its
    # own depth; one 2047 in a corner is the frame's maximum (the noise mask).
    frame = np.tile(np.arange(601, 1241, dtype=np.uint16), (480, 1))
    frame[0, 0] = 2047
    depth, _ = project_depth(frame, RGB_ZEROS)

    def disparity_of_x(px: float) -> float:
        return 601 + px  # 0-based column j holds 601 + j

    z, x, y = _hand_chain(240, 320, disparity_of_x)
    # No neighbour lands on the same RGB pixel (depth grows along x, so they spread apart),
    # so it holds this pixel's own depth.
    others = [
        _hand_chain(r, c, disparity_of_x)[1:]
        for r in range(238, 243)
        for c in range(318, 323)
        if (r, c) != (240, 320)
    ]
    assert (x, y) not in others
    assert depth[y - 1, x - 1] == pytest.approx(z, rel=1e-9)
    assert (x, y) == (324, 258) and 2.04 < z < 2.06  # disparity ~921.5
