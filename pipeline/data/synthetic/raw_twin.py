"""The synthetic raw twin: rooms filmed along short camera paths, in the raw dataset's layout.

Each room of ``scene`` becomes one scene folder (``<type>_<nnnn>a``) of
recorder-named ``d-``/``r-``/``a-`` frames, zipped per category under the real archives' names.
The RGB camera is the toolbox's (``camera.RGB``, distortion included) and the depth camera sits
at the toolbox's pose relative to it (``camera.R``, ``camera.T``), with its own intrinsics and
distortion; its frames are 11-bit disparity (``depth_abs2depth_rel``), 2047 where the sensor saw
nothing. The rays of both sensors are the ones the toolbox's undistortion models exactly (the
1-based grid included), so :func:`pipeline.data.raw.project_depth` of a frame lands on the depth
seen from the RGB camera. A few frames of each path are also labeled images, made as the
toolbox made the real ones: ``images`` the undistorted RGB, ``rawDepths`` the projected depth,
``depths`` (filled) the depth rendered from the RGB camera; ``scenes`` and ``rawDepthFilenames``/
``rawRgbFilenames`` point into the archives. The split is by scene, like NYU's.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.config import RawTwinConfig
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.raw import camera, project_depth, write_accel, write_pgm, write_ppm
from pipeline.data.raw.disparity import INVALID, depth_abs2depth_rel
from pipeline.data.raw.sync import frame_name
from pipeline.data.raw.undistort import undistort_points
from pipeline.data.synthetic.labeled import RawNames, split_indices, write_labeled, write_splits
from pipeline.data.synthetic.numeric import _rot_y
from pipeline.data.synthetic.raycast import trace_depth
from pipeline.data.synthetic.render import Frame, render_view
from pipeline.data.synthetic.scene import Scene, sample_scene
from pipeline.io import atomic_outputs

ARCHIVES = {  # scene type -> the real archive of that category
    "bedroom": "bedrooms_part1",
    "living_room": "living_rooms_part1",
    "office": "offices_part1",
    "kitchen": "kitchens_part1",
    "dining_room": "dining_rooms_part1",
    "study": "studies",
}
_STREAM = 2  # SeedSequence([seed, 2]): apart from the labeled twin's streams
_FPS = 30.0
_START = 1294000000.0  # recorder clock (Unix seconds) of the first frame
_STEP_M, _PAN_DEG = 0.012, 0.15  # camera path: sideways metres and yaw degrees per frame
_DROPOUT = 0.01  # fraction of depth pixels with no return
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member times: archives are a function of the params


@cache
def sensor_rays(cam: camera.Camera) -> np.ndarray:
    """(3, H, W) float32 rays (z = 1) seen by pixel (row, col) of a camera the toolbox models.

    The toolbox undistorts output pixel u (0-based) from the distorted position of (u - cx)/fx
    and then treats it as the 1-based ray (u + 1 - cx)/fx; the sensor seeing along the
    undistorted ray shifted by that pixel is the one it models exactly."""
    v, u = np.mgrid[0 : camera.HEIGHT, 0 : camera.WIDTH].astype(np.float64)
    x, y = undistort_points((u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, cam.k)
    rays = np.stack([x + 1 / cam.fx, y + 1 / cam.fy, np.ones_like(x)]).astype(np.float32)
    rays.flags.writeable = False
    return rays


@cache
def _pinhole_rays() -> np.ndarray:
    """The undistorted RGB camera on the toolbox's 1-based grid: what labeled images show."""
    c = camera.RGB
    v, u = np.mgrid[0 : camera.HEIGHT, 0 : camera.WIDTH].astype(np.float64)
    rays = np.stack([(u + 1 - c.cx) / c.fx, (v + 1 - c.cy) / c.fy, np.ones_like(u)])
    return rays.astype(np.float32)


def _depth_camera(scene: Scene) -> tuple[Scene, np.ndarray]:
    """The depth camera's pose and rays, in the RGB camera's frame.

    The toolbox maps depth-camera points p to q = R p + T with R close to -I, so the RGB
    camera's frame is -q: the depth camera's centre is at -T and its ray d points along -R d.
    A ray's parameter is then the depth camera's z."""
    eye = scene.eye + scene.rot @ (-camera.T)
    rays = np.tensordot(-camera.R, sensor_rays(camera.DEPTH).astype(np.float64), axes=1)
    return dataclasses.replace(scene, eye=eye), rays.astype(np.float32)


def _pose(scene: Scene, f: int) -> Scene:
    """Frame ``f`` of the path: a slow sideways walk while panning."""
    a = np.radians(_PAN_DEG * f)
    pan = _rot_y(a)
    return dataclasses.replace(
        scene, eye=scene.eye + _STEP_M * f * scene.rot[:, 0], rot=pan @ scene.rot
    )


def disparity_frame(rng: np.random.Generator, depth_m: np.ndarray) -> np.ndarray:
    """What the Kinect records for ``depth_m``: rounded 11-bit disparity, dropouts as 2047."""
    disparity = np.clip(np.round(depth_abs2depth_rel(depth_m)), 0, INVALID - 1)
    disparity[rng.random(depth_m.shape) < _DROPOUT] = INVALID
    return disparity.astype(np.uint16)


def _film_scene(
    rng: np.random.Generator, scene: Scene, folder: Path, frames: int, labeled: set[int]
) -> list[tuple[Frame, str, str]]:
    """Write the path's frames into ``folder``; return the labeled ones with their file names."""
    folder.mkdir(parents=True)
    out = []
    for f in range(frames):
        posed = _pose(scene, f)
        t = _START + f / _FPS
        rgb = render_view(rng, posed, sensor_rays(camera.RGB)).rgb
        depth_scene, depth_rays = _depth_camera(posed)
        disparity = disparity_frame(rng, trace_depth(depth_scene, depth_rays))
        names = {
            kind: frame_name(kind, t + dt, 1000 + f)
            for kind, dt in zip("dra", (0, 0.004, 0.011), strict=True)
        }
        write_pgm(folder / names["d"], disparity)
        write_ppm(folder / names["r"], rgb)
        if f % 2 == 0:  # the accelerometer reports at half the rate
            write_accel(folder / names["a"], 0, -819, 0, 0)
        if f in labeled:
            raw_depth, rgb_undistorted = project_depth(disparity, rgb)
            view = render_view(rng, posed, _pinhole_rays())
            frame = dataclasses.replace(
                view, rgb=rgb_undistorted, raw_depth=raw_depth.astype(np.float32)
            )
            out.append((frame, f"{folder.name}/{names['d']}", f"{folder.name}/{names['r']}"))
    return out


def generate_raw_twin(
    raw_dir: str | os.PathLike[str],
    archives_dir: str | os.PathLike[str],
    twin: RawTwinConfig,
    seed: int,
    test_fraction: float,
) -> tuple[Path, Path]:
    """Write the twin's archives into ``archives_dir`` and its labeled file and splits.mat into
    ``raw_dir``; scenes extracted from an earlier twin are removed. Returns the two .mat paths."""
    raw_dir, archives_dir = Path(raw_dir), Path(archives_dir)
    shutil.rmtree(archives_dir, ignore_errors=True)
    work = archives_dir / ".render"
    seeds = np.random.SeedSequence([seed, _STREAM]).spawn(twin.scenes)
    labeled_at = set(np.linspace(0, twin.frames - 1, twin.labeled_per_scene).round().astype(int))
    frames, scenes, depth_files, rgb_files, by_archive = [], [], [], [], {}
    for s in tqdm(range(twin.scenes), desc="raw twin", unit="scene"):
        rng = np.random.default_rng(seeds[s])
        scene = sample_scene(rng)
        name = f"{scene.scene_type}_{s + 1:04d}"
        shot = _film_scene(rng, scene, work / f"{name}a", twin.frames, labeled_at)
        by_archive.setdefault(ARCHIVES[scene.scene_type], []).append(work / f"{name}a")
        for frame, depth_file, rgb_file in shot:
            frames.append(frame)
            scenes.append(name)
            depth_files.append(depth_file)
            rgb_files.append(rgb_file)
    for archive, folders in by_archive.items():
        _zip(archives_dir / f"{archive}.zip", folders)
    shutil.rmtree(work)
    train_scenes, test_scenes = split_indices(twin.scenes, seed, test_fraction)
    per_scene = twin.labeled_per_scene
    test_idx = np.array([s * per_scene + k for s in test_scenes for k in range(per_scene)])
    train_idx = np.array([s * per_scene + k for s in train_scenes for k in range(per_scene)])
    labeled, splits = raw_dir / LABELED_NAME, raw_dir / SPLITS_NAME
    with atomic_outputs(labeled, splits) as (labeled_tmp, splits_tmp):
        names = RawNames(scenes, depth_files, rgb_files)
        write_labeled(labeled_tmp, frames, len(frames), names)
        write_splits(splits_tmp, train_idx, test_idx)
    return labeled, splits


def _zip(path: Path, folders: list[Path]) -> None:
    """A stored (uncompressed) zip of ``folders``, members ``<folder>/<file>`` in name order."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for folder in folders:
            for file in sorted(folder.iterdir()):
                info = zipfile.ZipInfo(f"{folder.name}/{file.name}", _ZIP_DATE)
                zf.writestr(info, file.read_bytes())
