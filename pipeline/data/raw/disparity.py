"""Kinect disparity <-> metres, as the toolbox's ``depth_rel2depth_abs.m`` converts them."""

from __future__ import annotations

import numpy as np

from pipeline.data.raw.camera import DEPTH_PARAM1, DEPTH_PARAM2, MAX_DEPTH

INVALID = 2047  # the 11-bit sensor's "no return"; it becomes 351.3 / (1092.5 - 2047) < 0 -> 0 m


def depth_rel2depth_abs(disparity: np.ndarray) -> np.ndarray:
    """Metres (float64) ``351.3 / (1092.5 - d)`` clamped to ``[0, 10]``.

    Disparities above 1092.5 (2047 among them) give negative values and so 0; 1092.5 itself gives
    +inf and so 10 m, as in the toolbox.
    """
    with np.errstate(divide="ignore"):
        depth = DEPTH_PARAM1 / (DEPTH_PARAM2 - np.asarray(disparity, dtype=np.float64))
    depth[depth > MAX_DEPTH] = MAX_DEPTH
    depth[depth < 0] = 0
    return depth


def depth_abs2depth_rel(depth_m: np.ndarray) -> np.ndarray:
    """The inverse, for depths in ``(0, 10]`` m: the real-valued disparity of each depth."""
    return DEPTH_PARAM2 - DEPTH_PARAM1 / np.asarray(depth_m, dtype=np.float64)
