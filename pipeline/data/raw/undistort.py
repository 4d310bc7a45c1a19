"""Undistort Kinect frames as the toolbox's ``undistort.m`` and ``undistort_depth.m`` do.

Both are Bouguet's ``rect`` with the identity rotation and the camera's own intrinsics as the new
camera: every output pixel ``(u, v)`` (0-based; here ``cx, cy`` are 0-based) is the ray
``((u - cx) / fx, (v - cy) / fy)``, distorted with ``apply_distortion.m`` (radial k1, k2, k3 and
tangential p1, p2, the same model as OpenCV's five coefficients), mapped back to pixels and
sampled bilinearly from its four source neighbours. A pixel whose neighbours are not all inside
the frame keeps the fill value: 255 in ``undistort.m``; 0 in ``undistort_depth.m``.
``undistort_depth.m`` also drops the neighbours that a noise mask marks, renormalises the
remaining weights, and gives 0 where none is left, so invalid disparities never blend into valid
ones.

OpenCV's ``cv2.undistort`` uses the same distortion model but not the same sampling (fixed-point
maps with 1/32-pixel weights: most 8-bit pixels come out a few levels different), fills with 0,
and has no masked variant. So this is numpy, in double precision like the toolbox.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np

from pipeline.data.raw.camera import Camera


def apply_distortion(
    x: np.ndarray, y: np.ndarray, k: tuple[float, float, float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """``apply_distortion.m``: distorted normalised coordinates, ``k = (k1, k2, p1, p2, k3)``."""
    k1, k2, p1, p2, k3 = k
    r2 = x**2 + y**2
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    a1 = 2 * x * y
    xd = x * radial + (p1 * a1 + p2 * (r2 + 2 * x**2))
    yd = y * radial + (p1 * (r2 + 2 * y**2) + p2 * a1)
    return xd, yd


class _Sampling(NamedTuple):
    """Where each output pixel reads from: flat indices (C order) and bilinear weights."""

    out: np.ndarray  # flat index of each output pixel whose four neighbours are inside
    corners: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # lu, ru, ld, rd
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@cache
def _sampling(camera: Camera, height: int, width: int) -> _Sampling:
    """The rect map of ``camera`` for a ``height x width`` frame; the same for every frame."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    k_new = np.array([[camera.fx, 0.0, camera.cx], [0.0, camera.fy, camera.cy], [0.0, 0.0, 1.0]])
    rays = np.linalg.inv(k_new) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    xd, yd = apply_distortion(rays[0] / rays[2], rays[1] / rays[2], camera.k)
    px = camera.fx * xd + camera.cx
    py = camera.fy * yd + camera.cy
    px0, py0 = np.floor(px), np.floor(py)
    good = (px0 >= 0) & (px0 <= width - 2) & (py0 >= 0) & (py0 <= height - 2)
    ax, ay = px[good] - px0[good], py[good] - py0[good]
    lu = py0[good].astype(np.int64) * width + px0[good].astype(np.int64)
    arrays = [
        np.flatnonzero(good),
        lu,
        lu + 1,
        lu + width,
        lu + width + 1,
        (1 - ay) * (1 - ax),
        (1 - ay) * ax,
        ay * (1 - ax),
        ay * ax,
    ]
    for a in arrays:
        a.setflags(write=False)  # cached and shared: nobody may change them
    return _Sampling(arrays[0], tuple(arrays[1:5]), tuple(arrays[5:9]))


def _blend(flat: np.ndarray, sampling: _Sampling, weights: tuple[np.ndarray, ...]) -> np.ndarray:
    lu, ru, ld, rd = sampling.corners
    w1, w2, w3, w4 = (w.reshape(w.shape + (1,) * (flat.ndim - 1)) for w in weights)
    return w1 * flat[lu] + w2 * flat[ru] + w3 * flat[ld] + w4 * flat[rd]


def undistort(image: np.ndarray, camera: Camera) -> np.ndarray:
    """``undistort.m``: the undistorted frame as float64, 255 where the source is outside.

    ``image`` is ``(H, W)`` or ``(H, W, C)``; channels are undistorted alike, as the toolbox
    does one channel at a time.
    """
    height, width = image.shape[:2]
    sampling = _sampling(camera, height, width)
    flat = image.reshape(height * width, *image.shape[2:]).astype(np.float64)
    out = np.full_like(flat, 255.0)
    out[sampling.out] = _blend(flat, sampling, sampling.weights)
    return out.reshape(image.shape)


def undistort_depth(image: np.ndarray, camera: Camera, noise_mask: np.ndarray) -> np.ndarray:
    """``undistort_depth.m``: like :func:`undistort`, leaving out neighbours in ``noise_mask``.

    The toolbox passes the already undistorted noise mask and looks it up at the *source*
    neighbours' indices; that is kept. Pixels with no unmasked neighbour, or outside, are 0.
    """
    height, width = image.shape
    sampling = _sampling(camera, height, width)
    flat = image.reshape(-1).astype(np.float64)
    keep = ~noise_mask.reshape(-1)
    weights = [w * keep[c] for w, c in zip(sampling.weights, sampling.corners, strict=True)]
    total = weights[0] + weights[1] + weights[2] + weights[3]
    some = total != 0
    weights = [np.divide(w, total, out=np.zeros_like(w), where=some) for w in weights]
    out = np.zeros_like(flat)
    out[sampling.out] = _blend(flat, sampling, tuple(weights))
    return out.reshape(image.shape)


def undistort_points(xd: np.ndarray, yd: np.ndarray, k) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`apply_distortion` by fixed-point iteration (the Kinect's is mild): the
    normalized pinhole coordinates that distort onto ``(xd, yd)``. Renderers of raw frames
    need it; the toolbox itself only distorts."""
    x, y = xd.copy(), yd.copy()
    for _ in range(50):
        fx, fy = apply_distortion(x, y, k)
        x, y = x - (fx - xd), y - (fy - yd)
    return x, y
