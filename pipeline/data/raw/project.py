"""Project a raw depth frame into the RGB camera: the toolbox's ``project_depth_map.m``.

Step by step, as the toolbox does it:

1. undistort the RGB frame (``undistort.m``, per channel) and convert it back with MATLAB's
   ``uint8`` (round half away from zero, saturate);
2. noise mask: the pixels equal to the frame's *maximum* (2047 where the sensor saw nothing,
   otherwise the farthest valid pixel), undistorted as an image of 0/255 and thresholded ``> 0``;
3. undistort the disparity with that mask (``undistort_depth.m``);
4. disparities ``< 600`` (also the 0 and 255 fill of undistortion) and masked pixels -> 2047;
5. metres (``depth_rel2depth_abs.m``), depth-camera points on the 1-based grid, ``R p + T``,
   projection with the RGB intrinsics, MATLAB ``round``;
6. keep ``0 < x < W`` and ``0 < y < H`` (1-based, so the last column and row are never
   written);
7. z-buffer: points sorted by depth, far first, and written one after the other, so the
   nearest point on each pixel stays (:func:`zbuffer` computes that minimum directly); the value
   is the *depth camera's* z, not the RGB camera's;
8. clamp to ``[0, 10]`` m and NaN -> 0. Holes stay 0: no filling.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.raw.camera import DEPTH, HEIGHT, MAX_DEPTH, RGB, WIDTH
from pipeline.data.raw.disparity import INVALID, depth_rel2depth_abs
from pipeline.data.raw.geometry import (
    depth_plane2depth_world,
    depth_world2rgb_world,
    rgb_world2rgb_plane,
)
from pipeline.data.raw.undistort import undistort, undistort_depth

MIN_DISPARITY = 600  # below it the toolbox calls a disparity an undistortion artefact (< 0.71 m)


def matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``round``: half away from zero (numpy's ``round`` goes to even)."""
    a = np.abs(x)
    whole = np.floor(a)
    return np.copysign(whole + (a - whole >= 0.5), x)


def in_frame(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The toolbox's bounds test on rounded 1-based positions: ``0 < x < W`` and ``0 < y < H``.

    Strict on both sides, so column ``W`` and row ``H`` (the last ones) are never written.
    """
    return (x > 0) & (x < WIDTH) & (y > 0) & (y < HEIGHT)


def zbuffer(x: np.ndarray, y: np.ndarray, depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each 1-based pixel ``(x, y)`` gets the nearest ``depth`` that lands on it; 0 where none does.

    The toolbox sorts the points far first and writes them one after the other, so the last,
    nearest write stays: the minimum per pixel, which is what this computes, without the sort
    (equal depths write equal values, and a NaN, written last by MATLAB's sort, propagates
    through ``np.minimum`` to the same NaN).
    """
    target = (y.astype(np.int64) - 1) * shape[1] + (x.astype(np.int64) - 1)
    out = np.full(shape[0] * shape[1], np.inf)
    np.minimum.at(out, target, depth)
    hit = np.zeros(out.size, dtype=bool)
    hit[target] = True
    out[~hit] = 0
    return out.reshape(shape)


def project_depth(disparity: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(depth_m, rgb_undistorted)``: metres (float64, 0 = no depth) on the RGB frame, and the RGB.

    ``disparity`` is a ``(480, 640)`` frame as :func:`pipeline.data.raw.read_pgm` returns it
    (any numeric dtype); ``rgb`` the ``(480, 640, 3)`` uint8 frame paired with it.
    """
    disparity = np.asarray(disparity)
    if disparity.shape != (HEIGHT, WIDTH) or np.asarray(rgb).shape != (HEIGHT, WIDTH, 3):
        raise ValueError(
            f"project_depth needs a ({HEIGHT}, {WIDTH}) disparity and a ({HEIGHT}, {WIDTH}, 3) "
            f"RGB frame, got {disparity.shape} and {np.asarray(rgb).shape}"
        )
    rgb_undistorted = np.clip(matlab_round(undistort(np.asarray(rgb), RGB)), 0, 255)

    raw = disparity.astype(np.float64)
    noise = undistort(255.0 * (raw == raw.max()), DEPTH) > 0
    raw = undistort_depth(raw, DEPTH, noise)
    raw[raw < MIN_DISPARITY] = INVALID
    raw[noise] = INVALID

    depth = depth_rel2depth_abs(raw)
    points = depth_world2rgb_world(depth_plane2depth_world(depth))
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = rgb_world2rgb_plane(points)
    x, y = matlab_round(x), matlab_round(y)
    inside = in_frame(x, y)
    z = depth.ravel(order="F")  # the depth camera's z, in the points' order
    out = zbuffer(x[inside], y[inside], z[inside], (HEIGHT, WIDTH))

    out[out > MAX_DEPTH] = MAX_DEPTH
    out[out < 0] = 0
    out[np.isnan(out)] = 0
    return out, rgb_undistorted.astype(np.uint8)
