"""project_depth against an independent render: a tilted wall and a floating panel seen by both
cameras. The depth camera's frame is rendered as the Kinect would record it (distorted, as
integer disparity), projected with the toolbox port, and compared with the depth rendered
directly from the RGB camera's pose."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pipeline.data.raw import camera, project_depth
from pipeline.data.raw.disparity import depth_abs2depth_rel
from pipeline.data.raw.undistort import apply_distortion, undistort_points

# In the depth camera's frame (x right, y down, z forward, metres): a wall z = 1.5 + 0.3 x
# - 0.2 y, and a panel at z = 0.95 over x in [-0.35, 0.15], y in [-0.25, 0.2].
WALL = (1.5, 0.3, -0.2)
PANEL_Z, PANEL_X, PANEL_Y = 0.95, (-0.35, 0.15), (-0.25, 0.2)


def _intersect(origin: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter of the first hit (rays ``origin + s * direction``), and which surface."""
    a, b, c = WALL
    ox, oy, oz = origin
    dx, dy, dz = direction
    s_wall = (a + b * ox + c * oy - oz) / (dz - b * dx - c * dy)
    s_panel = (PANEL_Z - oz) / dz
    px, py = ox + s_panel * dx, oy + s_panel * dy
    on_panel = (px >= PANEL_X[0]) & (px <= PANEL_X[1]) & (py >= PANEL_Y[0]) & (py <= PANEL_Y[1])
    hit_panel = on_panel & (s_panel > 0) & (s_panel < s_wall)
    return np.where(hit_panel, s_panel, s_wall), hit_panel


def _render_kinect_disparity() -> np.ndarray:
    """The raw frame: what the depth sensor at distorted pixel (u, v) sees, as uint16 disparity.

    The toolbox undistorts output pixel u (0-based) from the distorted position of the ray
    (u - cx) / fx, then treats it as the ray (u + 1 - cx) / fx (its 1-based grid); a camera
    that the toolbox models exactly therefore sees along the undistorted ray shifted by one
    pixel, and that is the camera rendered here.
    """
    d = camera.DEPTH
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    xd, yd = (u - d.cx) / d.fx, (v - d.cy) / d.fy
    x, y = undistort_points(xd, yd, d.k)
    fx, fy = apply_distortion(x, y, d.k)
    assert max(np.abs(fx - xd).max(), np.abs(fy - yd).max()) < 1e-12
    rays = np.stack([x + 1 / d.fx, y + 1 / d.fy, np.ones_like(x)])
    z, _ = _intersect(np.zeros(3), rays)  # the ray's z component is 1: s is the depth
    return np.round(depth_abs2depth_rel(z)).astype(np.uint16)


def _render_rgb_view() -> tuple[np.ndarray, np.ndarray]:
    """Depth (z in the RGB camera's frame) and surface id seen through each RGB pixel.

    The toolbox maps depth-camera points p to q = R p + T and projects with (x, y) = (qx/qz,
    qy/qz); since R is close to -I, qz < 0 and the RGB camera's own frame is -q. A 1-based RGB
    pixel (x, y) is the ray ((x - cx) / fx, (y - cy) / fy, 1) in that frame.
    """
    c = camera.RGB
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    q = np.stack([(u + 1 - c.cx) / c.fx, (v + 1 - c.cy) / c.fy, np.ones_like(u)])
    m_inv = np.linalg.inv(-camera.R)  # RGB frame -> depth frame: p = M^-1 (r - (-T))
    origin = m_inv @ camera.T
    direction = np.tensordot(m_inv, q, axes=1)
    s, panel = _intersect(origin, direction)
    return s, panel  # s is the depth along the RGB camera's axis: q has z = 1


def test_projection_matches_the_render_from_the_rgb_camera():
    disparity = _render_kinect_disparity()
    # All valid (600-1092), and near enough (<= 1.9 m) that rounding to integer disparity
    # costs at most 1.9^2 / 351.3 / 2 = 5 mm.
    assert disparity.min() > 700 and disparity.max() < 920
    projected, _ = project_depth(disparity, np.zeros((480, 640, 3), dtype=np.uint8))
    truth, panel = _render_rgb_view()

    # Occlusion edges: the panel's outline in the RGB view, widened by the 5 px that the
    # panel's shadow and the undistortion's blended ("flying") pixels reach at this parallax.
    edge = ndimage.binary_dilation(panel ^ ndimage.binary_erosion(panel), iterations=5)
    compared = (projected > 0) & ~edge
    assert compared.mean() > 0.7  # most of the RGB image has projected depth
    assert (compared & panel).sum() > 20_000 and (compared & ~panel).sum() > 100_000
    error = np.abs(projected[compared] - truth[compared])
    # What is left: integer disparity (<= 5 mm), the toolbox writing the depth camera's z, not
    # the RGB camera's (R tilts them ~0.3 degrees apart: a few mm), and rounding to pixels.
    assert (error < 0.01).mean() >= 0.99, np.percentile(error, [50, 99, 100])
    assert np.median(error) < 0.003
