"""Procedural indoor rooms ray-cast through the NYU Kinect intrinsics: the synthetic twin's pixels.

A model has to be able to learn depth from these images, so they carry a real room's cues: the
perspective of a box room with furniture on the floor, textures defined in world coordinates
(their image-space scale shrinks with distance), Lambertian shading from a ceiling light with
shadows and darkened corners, and mild distance attenuation. All 307,200 rays of an image are
traced at once with float32 numpy; one call renders one image from one ``np.random.Generator``.
The bytes do not depend on the CPU (``numeric`` says how).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.synthetic.kinect import _kinect_raw_depth
from pipeline.data.synthetic.numeric import _F32, _dot
from pipeline.data.synthetic.raycast import _camera_rays, _trace
from pipeline.data.synthetic.scene import Scene, sample_scene
from pipeline.data.synthetic.shading import _expose, _shade, _surfaces


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
