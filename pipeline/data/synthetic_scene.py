"""Procedural indoor rooms ray-cast through the NYU Kinect intrinsics: the synthetic twin's pixels.

A model has to be able to learn depth from these images, so they carry a real room's cues: the
perspective of a box room with furniture on the floor, textures defined in world coordinates
(their image-space scale shrinks with distance), Lambertian shading from a ceiling light with
shadows and darkened corners, and mild distance attenuation. All 307,200 rays of an image are
traced at once with float32 numpy; one call renders one image from one ``np.random.Generator``.

The bytes must not depend on the CPU: numpy picks SIMD loops by instruction set, and its float32
``power`` (like float64 ``exp``/``log``/``power``) rounds differently in the AVX2 and AVX-512
loops, so whole datasets differed between machines. Only ufuncs whose loops agree are used here
(float32 ``exp``/``log``/``sin``/``cos``, IEEE ``sqrt``); ``tests/test_synthetic.py`` renders
at every dispatch level the CPU has and compares.
"""

from __future__ import annotations

import colorsys
import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import ndimage

from pipeline.data.nyu import CX, CY, FX, FY, HEIGHT, WIDTH

NAMES = ("wall", "floor", "ceiling", "picture", "cabinet", "table", "box", "bed", "sofa", "shelves")
SCENE_TYPES = ("bedroom", "living_room", "office", "kitchen", "dining_room", "study")
MIN_DEPTH, MAX_DEPTH = 0.5, 10.0
KINECT_BASELINE_FOCAL = 0.075 * 580.0  # metre-pixels: disparity = this / depth
KINECT_SUBPIXEL = 8  # the Kinect reports disparity in 1/8 pixel steps

_LABEL = {name: i + 1 for i, name in enumerate(NAMES)}
_FURNITURE = {
    "bedroom": ("bed", "cabinet", "box", "shelves"),
    "living_room": ("sofa", "table", "box", "shelves"),
    "office": ("table", "cabinet", "box", "shelves"),
    "kitchen": ("cabinet", "table", "box"),
    "dining_room": ("table", "cabinet", "box"),
    "study": ("table", "shelves", "box", "cabinet"),
}
_AGAINST_WALL = {"cabinet", "shelves", "bed", "sofa"}
# Room faces are numbered 2 * axis + (far side): X = 0, X = W, floor, ceiling, Z = 0, Z = D.
_LEFT, _RIGHT, _FLOOR, _CEILING, _NEAR, _FAR = range(6)
_INSTANCE = {_LEFT: 1, _RIGHT: 2, _FLOOR: 1, _CEILING: 1, _NEAR: 3, _FAR: 4}  # walls 1-4
_CORNERS = np.array(list(itertools.product((-1.0, 1.0), repeat=3))).T  # (3, 8)
_F32 = np.float32


@dataclass(frozen=True)
class Frame:
    """One rendered image and its annotations, in NYU's row-major (480, 640) layout.

    rgb: (480, 640, 3) uint8. depth: (480, 640) float32 metres, camera-frame z, filled.
    raw_depth: like depth, with Kinect-like zero holes and disparity quantisation.
    labels: (480, 640) uint16, 1-based index into ``NAMES``. instances: (480, 640) uint8,
    instance number within its label. accel: (4,) float32 roll, yaw, pitch, tilt in degrees.
    """

    rgb: np.ndarray
    depth: np.ndarray
    raw_depth: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    scene_type: str
    accel: np.ndarray


@dataclass(frozen=True)
class _Material:
    kind: str
    base: np.ndarray  # (3,) linear RGB albedo
    scale: float  # metres: board width, tile size, stripe period, ...
    tones: np.ndarray  # (256,) uniform [0, 1) per-cell variation
    colours: np.ndarray  # (256, 3) per-cell linear colours (books, pictures)


@dataclass(frozen=True)
class _Box:
    """A box centred at ``centre``, axis-aligned in its own frame, yawed about the vertical."""

    centre: np.ndarray
    half: np.ndarray
    yaw: float
    material: _Material
    label: int
    instance: int


@dataclass(frozen=True)
class _Picture:
    face: int
    corner: tuple[float, float]  # (u, v) of the lower-left corner on the wall, metres
    size: tuple[float, float]
    material: _Material


@dataclass(frozen=True)
class Scene:
    room: np.ndarray  # (3,) the room is [0, W] x [0, H] x [0, D], Y up
    eye: np.ndarray  # (3,) camera centre
    rot: np.ndarray  # (3, 3) camera-to-world rotation
    light: np.ndarray  # (3,) point light position
    faces: tuple[_Material, ...]  # material per room face
    pictures: tuple[_Picture, ...]
    parts: tuple[_Box, ...]  # everything the camera can hit besides the room
    casters: tuple[_Box, ...]  # one bounding box per object, for shadows
    angles: tuple[float, float, float]  # roll, yaw, pitch in degrees
    lighting: tuple[float, float, float, float]  # intensity, ambient, attenuation /m, gain
    white: np.ndarray  # (3,) white-balance gains
    scene_type: str


def render_scene(rng: np.random.Generator) -> Frame:
    """Sample a room from ``rng`` and render it; the same generator state gives the same frame."""
    return render_view(rng, sample_scene(rng))


def render_view(
    rng: np.random.Generator, scene: Scene, camera_rays: np.ndarray | None = None
) -> Frame:
    """Render ``scene`` through ``camera_rays`` (3, H, W) in the camera frame (None: the NYU
    pinhole). A ray's z component scales its depth: with z = 1 the depth is camera-frame z."""
    rays = np.einsum(
        "ij,jhw->ihw",
        scene.rot.astype(_F32),
        _camera_rays() if camera_rays is None else camera_rays,
    )
    depth, surface, axis = _trace(scene, rays, pinhole=camera_rays is None)
    points = scene.eye.astype(_F32)[:, None] + depth.ravel() * rays.reshape(3, -1)
    albedo, normal, ao, labels, instances = _surfaces(scene, points, surface.ravel(), axis.ravel())
    radiance = _shade(scene, points, normal, albedo, ao, depth.ravel())
    rgb = _expose(rng, scene, radiance)
    flat_rays = rays.reshape(3, -1)
    cos_view = np.abs(_dot(normal, flat_rays)) / np.sqrt(_dot(flat_rays, flat_rays))
    raw = _kinect_raw_depth(rng, depth, cos_view.reshape(depth.shape), radiance)
    roll, yaw, pitch = scene.angles
    return Frame(
        rgb=rgb,
        depth=depth,
        raw_depth=raw,
        labels=labels.reshape(depth.shape),
        instances=instances.reshape(depth.shape),
        scene_type=scene.scene_type,
        accel=np.array([roll, yaw, pitch, pitch], dtype=_F32),  # tilt: no motor, so the pitch
    )


@cache
def _camera_rays() -> np.ndarray:
    """Camera-frame rays (3, H, W) with z = 1, so a hit's ray parameter t *is* the NYU depth."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(_F32)
    rays = np.stack([(u - _F32(CX)) / _F32(FX), (v - _F32(CY)) / _F32(FY), np.ones_like(u)])
    rays.flags.writeable = False
    return rays


def _pow(x: np.ndarray, p: float) -> np.ndarray:
    """``x ** p`` for float32 ``x >= 0`` through float32 ``exp``/``log`` (see the module note)."""
    with np.errstate(divide="ignore"):  # log(0) = -inf -> exp(-inf) = 0, as 0 ** p
        return np.exp(np.log(x) * _F32(p))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column dot product of two (3, P) arrays."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# --- scene sampling -------------------------------------------------------------------------


def _colour(
    rng: np.random.Generator,
    hue: tuple[float, float],
    sat: tuple[float, float],
    val: tuple[float, float],
) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val))
    return _pow(np.asarray(rgb, dtype=_F32), 2.2)  # sRGB-ish to linear albedo


def _material(rng: np.random.Generator, kind: str, base: np.ndarray, scale: float) -> _Material:
    colours = _pow(rng.uniform(0.05, 0.9, size=(256, 3)).astype(_F32), 2.2)
    return _Material(kind, base, float(scale), rng.random(256, dtype=_F32), colours)


def _floor_material(rng: np.random.Generator) -> _Material:
    kind = str(rng.choice(["boards", "tiles", "carpet"], p=[0.45, 0.35, 0.2]))
    hue, sat, val, scale = {
        "boards": ((0.05, 0.11), (0.35, 0.7), (0.3, 0.8), rng.uniform(0.09, 0.2)),
        "tiles": ((0.0, 1.0), (0.0, 0.25), (0.45, 0.95), rng.uniform(0.25, 0.6)),
        "carpet": ((0.0, 1.0), (0.1, 0.5), (0.25, 0.7), 0.02),
    }[kind]
    return _material(rng, kind, _colour(rng, hue, sat, val), scale)


def _furniture_material(rng: np.random.Generator, kind: str) -> _Material:
    if kind == "shelves":
        return _material(rng, "books", _colour(rng, (0.05, 0.12), (0.3, 0.6), (0.3, 0.7)), 0.35)
    texture = str(rng.choice(["wood", "fabric", "plain"]))
    base = _colour(rng, (0.0, 1.0), (0.1, 0.7), (0.25, 0.9))
    return _material(rng, texture, base, rng.uniform(0.02, 0.06))


def _furniture_parts(rng: np.random.Generator, kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(centre, half-size) boxes in the object's frame: x across, y up from the floor, z depth.

    Objects that stand against a wall have their back at +z.
    """
    u = rng.uniform
    if kind == "table":
        w, d, h = u(0.8, 1.6), u(0.6, 1.0), u(0.7, 0.78)
        legs = [
            (
                (sx * (w / 2 - 0.06), (h - 0.04) / 2, sz * (d / 2 - 0.06)),
                (0.025, (h - 0.04) / 2, 0.025),
            )
            for sx in (-1, 1)
            for sz in (-1, 1)
        ]
        parts = [((0, h - 0.02, 0), (w / 2, 0.02, d / 2)), *legs]
    elif kind == "sofa":
        w, d = u(1.6, 2.2), u(0.8, 0.95)
        parts = [
            ((0, 0.225, 0), (w / 2, 0.225, d / 2)),
            ((0, 0.425, d / 2 - 0.1), (w / 2, 0.425, 0.1)),
            ((-w / 2 + 0.1, 0.3, 0), (0.1, 0.3, d / 2)),
            ((w / 2 - 0.1, 0.3, 0), (0.1, 0.3, d / 2)),
        ]
    elif kind == "bed":
        w, d, h = u(1.4, 1.9), u(1.9, 2.1), u(0.45, 0.6)
        parts = [
            ((0, h / 2, 0), (w / 2, h / 2, d / 2)),
            ((0, 0.5, d / 2 - 0.04), (w / 2, 0.5, 0.04)),
        ]
    else:
        ranges = {
            "cabinet": ((0.5, 1.2), (0.8, 2.0), (0.4, 0.6)),
            "shelves": ((0.6, 1.2), (1.6, 2.1), (0.28, 0.4)),
            "box": ((0.3, 0.7), (0.25, 0.7), (0.3, 0.7)),
        }[kind]
        w, h, d = (u(*r) for r in ranges)
        parts = [((0, h / 2, 0), (w / 2, h / 2, d / 2))]
    return [(np.array(c, dtype=float), np.array(s, dtype=float)) for c, s in parts]


def _place(
    rng: np.random.Generator, kind: str, half: np.ndarray, room: np.ndarray, eye: np.ndarray
) -> tuple[float, float, float] | None:
    """Floor position and yaw for an object; None if no spot keeps it clear of the camera."""
    width, _, depth = room
    for _ in range(20):
        if kind in _AGAINST_WALL:
            wall = int(rng.integers(3))  # back against the left, right or far wall
            yaw = (-np.pi / 2, np.pi / 2, 0.0)[wall]
            span = depth if wall < 2 else width
            if span < 2 * half[0] + 0.1:
                continue
            along = rng.uniform(half[0] + 0.05, span - half[0] - 0.05)
            gap = half[2] + 0.02
            x, z = ((gap, along), (width - gap, along), (along, depth - gap))[wall]
        else:
            yaw = rng.uniform(-np.pi, np.pi)
            x, z = rng.uniform(0.4, width - 0.4), rng.uniform(1.0, depth - 0.4)
        # At least 1 m between the camera and the object's bounding circle keeps depth >= 0.5 m.
        if np.hypot(x - eye[0], z - eye[2]) > np.hypot(half[0], half[2]) + 1.0:
            return x, z, yaw
    return None


def sample_scene(rng: np.random.Generator) -> Scene:
    room = np.array([rng.uniform(3.0, 7.0), rng.uniform(2.5, 3.2), rng.uniform(4.0, 8.5)])
    eye = np.array(
        [
            np.clip(room[0] * rng.uniform(0.3, 0.7), 0.9, room[0] - 0.9),
            rng.uniform(1.0, 1.6),
            rng.uniform(0.3, 0.8),
        ]
    )
    roll, yaw, pitch = rng.uniform(-3, 3), rng.uniform(-12, 12), rng.uniform(-12, 3)
    # Camera y points down and world Y up; positive yaw turns right, positive pitch looks up.
    flip = np.diag([1.0, -1.0, 1.0])
    rot = _rot_y(np.radians(yaw)) @ _rot_x(-np.radians(pitch)) @ _rot_z(np.radians(roll)) @ flip
    light = np.array(
        [room[0] * rng.uniform(0.3, 0.7), room[1] - 0.15, room[2] * rng.uniform(0.3, 0.7)]
    )

    paint = _colour(rng, (0.0, 1.0), (0.03, 0.3), (0.6, 0.95))
    walls = [
        _material(
            rng, str(rng.choice(["paint", "stripes"], p=[0.6, 0.4])), paint, rng.uniform(0.08, 0.3)
        )
        for _ in range(4)
    ]
    ceiling_kind = str(rng.choice(["paint", "panels"]))
    ceiling = _material(rng, ceiling_kind, _colour(rng, (0, 1), (0, 0.05), (0.85, 0.97)), 0.6)
    faces = (walls[0], walls[1], _floor_material(rng), ceiling, walls[2], walls[3])

    pictures = []
    for _ in range(rng.integers(0, 4)):
        face = int(rng.choice([_LEFT, _RIGHT, _FAR]))
        span = room[2] if face in (_LEFT, _RIGHT) else room[0]
        w, h = rng.uniform(0.3, 1.2), rng.uniform(0.3, 0.9)
        corner = (rng.uniform(0.1, span - w - 0.1), rng.uniform(1.0, room[1] - h - 0.2))
        art = _material(rng, "picture", _colour(rng, (0, 1), (0, 0.3), (0.05, 0.9)), h / 6)
        pictures.append(_Picture(face, corner, (w, h), art))

    scene_type = str(rng.choice(SCENE_TYPES))
    parts: list[_Box] = []
    casters: list[_Box] = []
    counts: dict[str, int] = {}
    for _ in range(rng.integers(2, 6)):
        kind = str(rng.choice(_FURNITURE[scene_type]))
        local = _furniture_parts(rng, kind)
        lo = np.min([c - s for c, s in local], axis=0)
        hi = np.max([c + s for c, s in local], axis=0)
        material = _furniture_material(rng, kind)
        spot = _place(rng, kind, (hi - lo) / 2, room, eye)
        if spot is None:
            continue
        x, z, obj_yaw = spot
        counts[kind] = counts.get(kind, 0) + 1
        to_world, origin = _rot_y(obj_yaw), np.array([x, 0.0, z])
        for centre, half in local:
            box = _Box(
                origin + to_world @ centre, half, obj_yaw, material, _LABEL[kind], counts[kind]
            )
            parts.append(box)
        lo[1] = 0.01  # the shadow caster floats 1 cm up so the floor beneath it lies outside
        caster = _Box(origin + to_world @ ((lo + hi) / 2), (hi - lo) / 2, obj_yaw, material, 0, 0)
        casters.append(caster)

    lighting = (
        rng.uniform(1.2, 2.0),
        rng.uniform(0.15, 0.3),
        rng.uniform(0.03, 0.08),
        rng.uniform(0.8, 1.2),
    )
    return Scene(
        room=room,
        eye=eye,
        rot=rot,
        light=light,
        faces=faces,
        pictures=tuple(pictures),
        parts=tuple(parts),
        casters=tuple(casters),
        angles=(roll, yaw, pitch),
        lighting=lighting,
        white=rng.uniform(0.93, 1.07, size=3).astype(_F32),
        scene_type=scene_type,
    )


# --- ray casting ----------------------------------------------------------------------------


def _yaw(vec: np.ndarray, angle: float) -> np.ndarray:
    """Rotate vectors (3, ...) about the vertical axis, like ``_rot_y(angle) @ vec``."""
    c, s = _F32(np.cos(angle)), _F32(np.sin(angle))
    return np.stack([c * vec[0] + s * vec[2], vec[1], c * vec[2] - s * vec[0]])


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


# --- surfaces and shading ---------------------------------------------------------------------


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


def _kinect_raw_depth(
    rng: np.random.Generator, depth: np.ndarray, cos_view: np.ndarray, radiance: np.ndarray
) -> np.ndarray:
    """Depth as a Kinect would report it: quantised disparity and zero where no return came back."""
    disparity = np.round(KINECT_BASELINE_FOCAL / depth * KINECT_SUBPIXEL) / KINECT_SUBPIXEL
    raw = (KINECT_BASELINE_FOCAL / disparity).astype(_F32)
    dark = (radiance[0] + radiance[1] + radiance[2]).reshape(depth.shape) < 0.06
    holes = (cos_view < 0.1) | (dark & (rng.random(depth.shape) < 0.8))
    holes |= rng.random(depth.shape) < 0.003
    holes |= _blobs(rng, depth.shape) > 0.93
    # Projector shadow: a nearer surface to the left whose disparity exceeds this pixel's by more
    # than their distance in pixels hides it from the projector (one running max along rows).
    reach = disparity + np.arange(WIDTH)
    hidden = np.maximum.accumulate(reach, axis=1)[:, :-1] > reach[:, 1:] + 0.5
    holes[:, 1:] |= hidden
    left, right, top, bottom = rng.integers([8, 2, 2, 2], [20, 8, 8, 8])
    holes[:, :left] = holes[:, WIDTH - right :] = True
    holes[:top] = holes[HEIGHT - bottom :] = True
    raw[holes] = 0.0
    return raw


def _blobs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth random field in [0, 1): a coarse 13x17 grid, bilinearly upsampled."""
    coarse = rng.random((13, 17), dtype=_F32)
    return ndimage.zoom(coarse, (shape[0] / 13, shape[1] / 17), order=1)
