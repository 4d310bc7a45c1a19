"""Scene sampling: a box room with furniture, pictures, materials, a light and a camera pose.

Every draw comes from one ``np.random.Generator``, so a generator state is one room.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from pipeline.data.synthetic.numeric import _F32, _pow, _rot_x, _rot_y, _rot_z

NAMES = ("wall", "floor", "ceiling", "picture", "cabinet", "table", "box", "bed", "sofa", "shelves")
SCENE_TYPES = ("bedroom", "living_room", "office", "kitchen", "dining_room", "study")

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


def _camera(
    rng: np.random.Generator, room: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Eye position, camera-to-world rotation and (roll, yaw, pitch) in degrees."""
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
    return eye, rot, (roll, yaw, pitch)


def _surfaces(
    rng: np.random.Generator, room: np.ndarray
) -> tuple[tuple[_Material, ...], tuple[_Picture, ...]]:
    """The room's six faces' materials and the pictures hung on its walls."""
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
    return faces, tuple(pictures)


def _furniture(
    rng: np.random.Generator, room: np.ndarray, eye: np.ndarray
) -> tuple[str, tuple[_Box, ...], tuple[_Box, ...]]:
    """The scene type, its furniture's boxes, and one shadow-casting box per piece."""
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
    return scene_type, tuple(parts), tuple(casters)


def sample_scene(rng: np.random.Generator) -> Scene:
    """One random room: size, camera, light, materials, pictures and furniture, drawn from
    ``rng`` in a fixed order (the synthetic data's bytes depend on it)."""
    room = np.array([rng.uniform(3.0, 7.0), rng.uniform(2.5, 3.2), rng.uniform(4.0, 8.5)])
    eye, rot, angles = _camera(rng, room)
    light = np.array(
        [room[0] * rng.uniform(0.3, 0.7), room[1] - 0.15, room[2] * rng.uniform(0.3, 0.7)]
    )
    faces, pictures = _surfaces(rng, room)
    scene_type, parts, casters = _furniture(rng, room, eye)
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
        pictures=pictures,
        parts=parts,
        casters=casters,
        angles=angles,
        lighting=lighting,
        white=rng.uniform(0.93, 1.07, size=3).astype(_F32),
        scene_type=scene_type,
    )
