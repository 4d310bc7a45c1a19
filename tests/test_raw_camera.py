"""The calibration as camera_params.m builds it, and the depth -> RGB world step."""

from __future__ import annotations

import numpy as np

from pipeline.data.raw import camera
from pipeline.data.raw.geometry import depth_world2rgb_world


def test_rotation_is_inverse_of_minus_the_values_read_row_by_row():
    # reshape(-v, [3 3]) fills columns, so R' = -v read row by row and R = inv(R'). The nine
    # values are a rotation to 1e-16, so inv(R') = -(v by rows)^T: R[0, 1] is -v[3], not -v[1].
    rows = np.array(camera.ROTATION_VALUES).reshape(3, 3)
    np.testing.assert_allclose(camera.R, -rows.T, atol=1e-12)
    assert abs(camera.R[0, 1] - 5.0359919480810989e-03) < 1e-12
    assert abs(camera.R[1, 0] - (-5.0518419386157446e-03)) < 1e-12
    assert np.linalg.det(camera.R) < 0  # the minus sign: close to -I, not to I
    np.testing.assert_allclose(camera.R @ camera.R.T, np.eye(3), atol=1e-12)


def test_translation_is_applied_x_then_z_then_y():
    assert camera.T.tolist() == [camera.T_X, camera.T_Z, camera.T_Y]
    # The origin of the depth camera lands at T, with t_z second and t_y third.
    origin = depth_world2rgb_world(np.zeros((1, 3)))[0]
    assert origin.tolist() == [
        2.5031875059141302e-02,
        -2.9342312935846411e-04,
        6.6238747008330102e-04,
    ]


def test_depth_world2rgb_world_by_hand():
    # p = (0.5, -0.25, 2) through R p + T, R written out from the constants.
    v = camera.ROTATION_VALUES
    r = -np.array([[v[0], v[3], v[6]], [v[1], v[4], v[7]], [v[2], v[5], v[8]]])
    p = np.array([0.5, -0.25, 2.0])
    expected = [
        r[0, 0] * 0.5 + r[0, 1] * -0.25 + r[0, 2] * 2.0 + 2.5031875059141302e-02,
        r[1, 0] * 0.5 + r[1, 1] * -0.25 + r[1, 2] * 2.0 + -2.9342312935846411e-04,
        r[2, 0] * 0.5 + r[2, 1] * -0.25 + r[2, 2] * 2.0 + 6.6238747008330102e-04,
    ]
    np.testing.assert_allclose(depth_world2rgb_world(p[None])[0], expected, rtol=0, atol=1e-12)


def test_cameras_hold_camera_params_values():
    assert (camera.RGB.fx, camera.RGB.cy) == (5.1885790117450188e02, 2.5373616633400465e02)
    assert (camera.DEPTH.fx, camera.DEPTH.cx) == (5.8262448167737955e02, 3.1304475870804731e02)
    assert camera.RGB.k[2:4] == (7.2231363135888329e-04, 1.0479627195765181e-03)  # p1, p2
    assert camera.DEPTH.k[4] == -5.1031725053400578e-01  # k3 last, Bouguet's order
    assert (camera.DEPTH_PARAM1, camera.DEPTH_PARAM2, camera.MAX_DEPTH) == (351.3, 1092.5, 10.0)
