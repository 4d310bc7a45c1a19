"""Surfaces and shading: procedural textures in world coordinates, labels, ambient occlusion,
a Lambertian ceiling light with shadows, distance attenuation and the camera's exposure."""

from __future__ import annotations

import numpy as np

from pipeline.data.nyu import HEIGHT, WIDTH
from pipeline.data.synthetic.numeric import _F32, _dot, _pow, _yaw
from pipeline.data.synthetic.raycast import _slab
from pipeline.data.synthetic.scene import (
    _CEILING,
    _FLOOR,
    _INSTANCE,
    _LABEL,
    Scene,
    _Material,
    _Picture,
)


def _surfaces(
    scene: Scene, points: np.ndarray, surface: np.ndarray, entry: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Albedo (3, P), normal (3, P), ambient occlusion (P,), labels and instances per hit."""
    n = points.shape[1]
    albedo, normal = np.empty((3, n), _F32), np.zeros((3, n), _F32)
    ao, labels, instances = np.empty(n, _F32), np.zeros(n, np.uint16), np.zeros(n, np.uint8)
    room = scene.room.astype(_F32)[:, None]
    for face, material in enumerate(scene.faces):
        idx = np.flatnonzero(surface == face)
        p = points[:, idx]
        axis, far_side = divmod(face, 2)
        u, v = _face_uv(p, axis)
        albedo[:, idx] = _texture(material, u, v)
        normal[axis, idx] = -1.0 if far_side else 1.0
        # Corners darken: distance to the nearest *other* room plane (the own one is ~0).
        a, b, c = np.minimum(p, room - p)
        corner = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))  # middle of three
        ao[idx] = 1.0 - 0.35 * np.exp(-corner / 0.3)
        name = {_FLOOR: "floor", _CEILING: "ceiling"}.get(face, "wall")
        labels[idx], instances[idx] = _LABEL[name], _INSTANCE[face]
        for number, pic in enumerate(scene.pictures, start=1):
            if pic.face != face:
                continue
            pu, pv = u - pic.corner[0], v - pic.corner[1]
            inside = (pu >= 0) & (pu < pic.size[0]) & (pv >= 0) & (pv < pic.size[1])
            sel = idx[inside]
            albedo[:, sel] = _picture(pic, pu[inside], pv[inside])
            labels[sel] = _LABEL["picture"]
            instances[sel] = number
    for k, box in enumerate(scene.parts):
        idx = np.flatnonzero(surface == 6 + k)
        local = _yaw(points[:, idx] - box.centre.astype(_F32)[:, None], -box.yaw)
        axis = entry[idx]
        u, v = _face_uv(local, axis)
        if box.material.kind == "books":
            albedo[:, idx] = _books(box.material, u, v, front=(axis == 2) & (local[2] < 0))
        else:
            albedo[:, idx] = _texture(box.material, u, v)
        # The hit lies on the face at +-half along the entry axis; its sign orients the normal.
        n_local = np.zeros_like(local)
        columns = np.arange(idx.size)
        n_local[axis, columns] = np.sign(local[axis, columns])
        normal[:, idx] = _yaw(n_local, box.yaw)
        ao[idx] = 1.0 - 0.3 * np.exp(-points[1, idx] / 0.15)
        labels[idx], instances[idx] = box.label, box.instance
    return albedo, normal, ao, labels, instances


def _face_uv(p: np.ndarray, axis: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates on a face: the two coordinates other than its normal axis."""
    u = np.where(axis == 0, p[2], p[0])
    v = np.where(axis == 1, p[2], p[1])
    return u, v


def _cell(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Hash integer cell coordinates to 0..255 so per-cell variation needs no stored grid."""
    return ((i.astype(np.int64) * 92821) ^ (j.astype(np.int64) * 68917)) & 255


def _texture(material: _Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Albedo (3, n) of a procedural material at surface coordinates (u, v) in metres."""
    m, s = material, material.scale
    if m.kind == "boards":
        i = np.floor(u / s)
        vv = v + m.tones[i.astype(np.int64) & 255] * 1.5
        cell = _cell(i, np.floor(vv / 1.5))
        tone = (0.75 + 0.5 * m.tones[cell]) * (
            1.0
            + 0.07 * np.sin(2 * np.pi * (9.0 * vv + 0.7 * u / s + 4.0 * m.tones[(cell + 17) & 255]))
        )
        tone[((u / s) % 1.0 < 0.04) | ((vv / 1.5) % 1.0 < 0.004)] *= 0.5
    elif m.kind == "tiles":
        i, j = np.floor(u / s), np.floor(v / s)
        tone = 0.9 + 0.2 * m.tones[_cell(i, j)]
        if m.tones[0] < 0.3:  # checkerboard
            tone = np.where((i + j) % 2 == 0, tone, tone * 0.45)
        tone[((u % s) < 0.006) | ((v % s) < 0.006)] = 0.6
    elif m.kind == "carpet":
        tone = 0.8 + 0.4 * m.tones[_cell(np.floor(u / s), np.floor(v / s))]
    elif m.kind == "stripes":
        tone = np.where(np.sin(2 * np.pi * u / s + 6.3 * m.tones[0]) > 0, 1.0, 0.8)
    elif m.kind == "panels":
        tone = np.where(((u % s) < 0.02) | ((v % s) < 0.02), 0.6, 1.0)
    elif m.kind == "wood":
        tone = 1.0 + 0.12 * np.sin(2 * np.pi * (u / s + 0.5 * np.sin(3.0 * v + 6.3 * m.tones[0])))
    elif m.kind == "fabric":
        tone = 1.0 + 0.1 * np.sign(np.sin(2 * np.pi * u / s) * np.sin(2 * np.pi * v / s))
    else:  # paint, plain: low-frequency unevenness only
        phase = 6.3 * m.tones[:4]
        tone = 1.0 + 0.06 * np.sin(1.3 * u + phase[0]) * np.sin(0.9 * v + phase[1])
        tone += 0.04 * np.sin(0.37 * u + 2.1 * v + phase[2])
    return m.base[:, None] * tone.astype(_F32)


def _books(m: _Material, u: np.ndarray, v: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Shelf boards every ``scale`` metres with rows of books of random width, height, colour."""
    row = np.floor(v / m.scale)
    shifted = u + m.tones[row.astype(np.int64) & 255]
    book = _cell(np.floor(shifted / 0.035), row)
    height = (v / m.scale) % 1.0
    out = m.base[:, None] * np.ones_like(u)
    spine = front & (height > 0.06) & (height < 0.5 + 0.45 * m.tones[book])
    out[:, spine] = m.colours[book[spine]].T
    out[:, front & ~spine & (height > 0.06)] *= 0.15  # dark gap above the books
    return out


def _picture(pic: _Picture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    m = pic.material
    out = m.colours[_cell(np.floor(u / m.scale), np.floor(v / m.scale))].T.copy()
    frame = (u < 0.04) | (v < 0.04) | (u > pic.size[0] - 0.04) | (v > pic.size[1] - 0.04)
    out[:, frame] = m.base[:, None]
    return out


def _in_shadow(scene: Scene, points: np.ndarray) -> np.ndarray:
    """True where an object's bounding box blocks the segment from the point to the light."""
    blocked = np.zeros(points.shape[1], bool)
    to_light = scene.light.astype(_F32)[:, None] - points
    for box in scene.casters:
        origin = _yaw(points - box.centre.astype(_F32)[:, None], -box.yaw)
        t_in, t_out, _ = _slab(origin, _yaw(to_light, -box.yaw), box.half)
        blocked |= (t_in > 1e-3) & (t_in < t_out) & (t_in < 1.0)
    return blocked


def _shade(
    scene: Scene,
    points: np.ndarray,
    normal: np.ndarray,
    albedo: np.ndarray,
    ao: np.ndarray,
    depth: np.ndarray,
) -> np.ndarray:
    """Linear radiance (3, P): ambient + Lambertian point light, then distance attenuation."""
    intensity, ambient, attenuation, _ = scene.lighting
    to_light = scene.light.astype(_F32)[:, None] - points
    dist = np.sqrt(_dot(to_light, to_light))
    lambert = np.maximum(_dot(normal, to_light) / dist, 0.0)
    direct = intensity * lambert * ~_in_shadow(scene, points) / (1.0 + (dist / 2.5) ** 2)
    radiance = albedo * (ambient * ao + direct)
    fade = np.exp(-attenuation * depth)
    return radiance * fade + _F32(0.02) * (1.0 - fade)


def _expose(rng: np.random.Generator, scene: Scene, radiance: np.ndarray) -> np.ndarray:
    """Gain, white balance, gamma, sensor noise and 8-bit quantisation -> (H, W, 3) uint8."""
    gain = scene.lighting[3]
    img = _pow(np.clip(radiance * (gain * scene.white[:, None]), 0.0, 1.0), 1 / 2.2)
    img += _F32(0.008) * rng.standard_normal(img.shape, dtype=_F32)
    img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img.reshape(3, HEIGHT, WIDTH).transpose(1, 2, 0))
