"""Ray casting: the NYU pinhole's rays, their first hit on the room or a box, and its depth."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np

from pipeline.data.nyu import CX, CY, FX, FY, HEIGHT, WIDTH
from pipeline.data.synthetic.numeric import _F32, _rot_y, _yaw
from pipeline.data.synthetic.scene import Scene, _Box

MIN_DEPTH, MAX_DEPTH = 0.5, 10.0

_CORNERS = np.array(list(itertools.product((-1.0, 1.0), repeat=3))).T  # (3, 8)


@cache
def _camera_rays() -> np.ndarray:
    """Camera-frame rays (3, H, W) with z = 1, so a hit's ray parameter t *is* the NYU depth."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(_F32)
    rays = np.stack([(u - _F32(CX)) / _F32(FX), (v - _F32(CY)) / _F32(FY), np.ones_like(u)])
    rays.flags.writeable = False
    return rays


def _slab(
    origin: np.ndarray, direction: np.ndarray, half: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry/exit ray parameters against the box [-half, half] (all arrays in its frame)."""
    shape = (3,) + (1,) * (direction.ndim - 1)
    half = half.astype(_F32).reshape(shape)
    with np.errstate(divide="ignore"):  # +-inf is what the slab test wants for d == 0
        inv = _F32(1.0) / direction
    t1, t2 = (-half - origin) * inv, (half - origin) * inv
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    # Row-wise max/min: numpy's strided reductions over axis 0 are several times slower.
    return (
        np.maximum(np.maximum(near[0], near[1]), near[2]),
        np.minimum(np.minimum(far[0], far[1]), far[2]),
        near,
    )


def _pixel_window(scene: Scene, box: _Box) -> tuple[slice, slice] | None:
    """Image rows/cols that can see ``box``: the bounding rectangle of its projected corners."""
    corners = box.centre[:, None] + _rot_y(box.yaw) @ (_CORNERS * box.half[:, None])
    cam = scene.rot.T @ (corners - scene.eye[:, None])
    ahead = cam[2] > 0.05
    if not ahead.any():
        return None
    if not ahead.all():
        return slice(None), slice(None)
    u, v = FX * cam[0] / cam[2] + CX, FY * cam[1] / cam[2] + CY
    c0, c1 = max(int(u.min()) - 1, 0), min(int(u.max()) + 2, WIDTH)
    r0, r1 = max(int(v.min()) - 1, 0), min(int(v.max()) + 2, HEIGHT)
    return (slice(r0, r1), slice(c0, c1)) if c0 < c1 and r0 < r1 else None


def trace_depth(scene: Scene, camera_rays: np.ndarray) -> np.ndarray:
    """Ray parameter (H, W) of the first hit along camera-frame ``camera_rays`` (3, H, W)."""
    rays = np.einsum("ij,jhw->ihw", scene.rot.astype(_F32), camera_rays.astype(_F32))
    return _trace(scene, rays, pinhole=False)[0]


def _trace(
    scene: Scene, rays: np.ndarray, pinhole: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (H, W), surface id (0-5 room face, 6 + k part k) and part-frame entry axis.

    ``pinhole``: the rays are the NYU pinhole's, so a part is traced only in the pixel window
    its corners project to; other rays (distorted, another camera) trace every pixel."""
    rays = np.where(rays == 0, _F32(1e-9), rays)  # a signed zero would exit the room at -inf
    eye = scene.eye.astype(_F32)[:, None, None]
    bound = np.where(rays > 0, scene.room.astype(_F32)[:, None, None], _F32(0))
    tx, ty, tz = (bound - eye) / rays
    depth = np.minimum(np.minimum(tx, ty), tz)
    axis = np.where(tx == depth, 0, np.where(ty == depth, 1, 2))
    far_side = np.choose(axis, rays) > 0
    surface = (2 * axis + far_side).astype(np.int16)
    entry = np.zeros(depth.shape, np.int8)
    for k, box in enumerate(scene.parts):
        window = _pixel_window(scene, box) if pinhole else (slice(None), slice(None))
        if window is None:
            continue
        origin = _yaw((scene.eye - box.centre)[:, None, None].astype(_F32), -box.yaw)
        t_in, t_out, near = _slab(origin, _yaw(rays[:, window[0], window[1]], -box.yaw), box.half)
        best = depth[window]  # views: assigning through them updates the full arrays
        hit = (t_in <= t_out) & (t_in > 0) & (t_in < best)
        best[hit] = t_in[hit]
        surface[window][hit] = 6 + k
        entry[window][hit] = near.argmax(axis=0)[hit]
    np.clip(depth, MIN_DEPTH, MAX_DEPTH, out=depth)  # guard; the sampled rooms stay inside
    return depth, surface, entry
