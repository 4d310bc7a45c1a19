"""The toolbox's three coordinate steps between the depth image and the RGB image.

``depth_plane2depth_world.m``: pixel ``(x, y)`` of the *1-based* grid (``meshgrid(1:W, 1:H)``) at
depth ``z`` is the point ``((x - cx) z / fx, (y - cy) z / fy, z)`` of the depth camera. (Its
undistortion used the same ``cx, cy`` on a 0-based grid: the toolbox is one pixel apart between
the two steps, and this port keeps that.) ``depth_world2rgb_world.m``: ``R p + T`` with the
``R`` and ``T = [t_x; t_z; t_y]`` of :mod:`pipeline.data.raw.camera`. ``rgb_world2rgb_plane.m``:
``(X fx / Z + cx, Y fy / Z + cy)``, again a 1-based pixel position. Points are ``(N, 3)`` rows in
MATLAB's column-major pixel order (``points3d = [X(:) Y(:) Z(:)]``), the order the z-buffer
receives them in.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.raw.camera import DEPTH, RGB, Camera
from pipeline.data.raw.camera import R as ROTATION
from pipeline.data.raw.camera import T as TRANSLATION


def depth_plane2depth_world(depth_m: np.ndarray, camera: Camera = DEPTH) -> np.ndarray:
    """``(H*W, 3)`` depth-camera points of an ``(H, W)`` depth image, column-major pixel order."""
    height, width = depth_m.shape
    xx, yy = np.meshgrid(np.arange(1, width + 1), np.arange(1, height + 1))
    z = depth_m.ravel(order="F")
    x = (xx.ravel(order="F") - camera.cx) * z / camera.fx
    y = (yy.ravel(order="F") - camera.cy) * z / camera.fy
    return np.stack([x, y, z], axis=1)


def depth_world2rgb_world(
    points: np.ndarray, rotation: np.ndarray = ROTATION, translation: np.ndarray = TRANSLATION
) -> np.ndarray:
    """``R p + T`` for each row ``p``: depth-camera points in the RGB camera's frame."""
    # Written out per component: a BLAS product with an inner size of 3 is several times slower.
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    rows = [r[0] * x + r[1] * y + r[2] * z + t for r, t in zip(rotation, translation, strict=True)]
    return np.stack(rows, axis=1)


def rgb_world2rgb_plane(points: np.ndarray, camera: Camera = RGB) -> tuple[np.ndarray, np.ndarray]:
    """1-based ``(x, y)`` positions of RGB-camera points on the RGB image (not rounded)."""
    x = points[:, 0] * camera.fx / points[:, 2] + camera.cx
    y = points[:, 1] * camera.fy / points[:, 2] + camera.cy
    return x, y
