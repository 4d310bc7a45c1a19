"""``train.h5`` from raw frames: the labeled ``train.h5``'s layout, made scene by scene.

Each sampled frame is read (PGM/PPM), projected into the RGB camera with the toolbox port
(:func:`pipeline.data.raw.project_depth`: raw depth, holes stay 0) and resized like the labeled
images (:func:`pipeline.data.preprocess.resize_pair`). Every scene folder goes into its own HDF5
file in a work folder beside the output, renamed into place when complete, so a killed run resumes
at the first unfinished scene; the work folder's name carries a hash of the frame list and the size,
so a run with other params never reuses it. The scene files are then copied image by image into the
output (memory: a few images, whatever the number of frames) and the work folder is removed. Scenes
are independent, so they are made in parallel processes. Extra datasets: ``raw_depth_file`` and
``raw_rgb_file`` (``<folder>/<file>``).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
from itertools import groupby
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from pipeline.config import DataConfig, PreprocessConfig
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME, NYUFormatError, open_labeled, read_splits
from pipeline.data.preprocess import image_dataset, preprocess, resize_pair, write_split
from pipeline.data.raw.archives import SCENES_DIR, archive_dir
from pipeline.data.raw.frames import RawFrame, read_frames
from pipeline.data.raw.netpbm import read_pgm, read_ppm
from pipeline.data.raw.project import project_depth
from pipeline.io import NewH5File, atomic_outputs, atomic_path

_WORK_PREFIX = ".raw-scenes-"
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def raw_image(
    scenes_dir: Path, frame: RawFrame, size_hw: tuple[int, int]
) -> tuple[np.ndarray, ...]:
    """One sampled frame as a training image: resized RGB (uint8) and depth (float32 metres)."""
    folder = Path(scenes_dir) / frame.folder
    depth, rgb = project_depth(read_pgm(folder / frame.depth), read_ppm(folder / frame.rgb))
    return resize_pair(rgb, depth.astype(np.float32), size_hw)


def work_dir(out_path: Path, frames: list[RawFrame], cfg: PreprocessConfig) -> Path:
    key = hashlib.md5(repr((frames, cfg.resize_hw)).encode()).hexdigest()[:12]
    return Path(out_path).parent / f"{_WORK_PREFIX}{key}"


def write_raw_train(
    frames: list[RawFrame],
    scenes_dir: Path,
    out_path: Path,
    work: Path,
    cfg: PreprocessConfig,
    workers: int | None = None,
) -> None:
    """Write the frames into ``out_path`` (a temporary path: give it one), resuming in ``work``.

    Unfinished scenes are made by ``workers`` processes (default: all CPUs), one scene each."""
    for stale in Path(work).parent.glob(f"{_WORK_PREFIX}*"):
        if stale != work:
            shutil.rmtree(stale)
    work.mkdir(parents=True, exist_ok=True)
    scenes = [(folder, list(rows)) for folder, rows in groupby(frames, key=lambda f: f.folder)]
    wanted = {f"{folder}.h5" for folder, _ in scenes}
    for leftover in work.iterdir():  # temporaries of a killed run
        if leftover.name not in wanted:
            leftover.unlink()
    todo = [(work, folder, rows, scenes_dir, cfg) for folder, rows in scenes]
    todo = [job for job in todo if not (work / f"{job[1]}.h5").exists()]
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for job in todo:
            _scene_file(job)
    else:  # scenes are independent files: one per process, each a pure function of its frames
        with multiprocessing.get_context(_START_METHOD).Pool(workers) as pool:
            for _ in pool.imap_unordered(_scene_file, todo):
                pass
    _assemble(out_path, [work / f"{folder}.h5" for folder, _ in scenes], frames, cfg)


def _scene_file(job: tuple[Path, str, list[RawFrame], Path, PreprocessConfig]) -> None:
    work, folder, rows, scenes_dir, cfg = job
    with atomic_path(work / f"{folder}.h5") as tmp:
        _write_scene(tmp, folder, rows, scenes_dir, cfg)


def _write_scene(
    path: Path, folder: str, rows: list[RawFrame], scenes_dir: Path, cfg: PreprocessConfig
) -> None:
    n, hw = len(rows), cfg.resize_hw
    with NewH5File(path, track_order=False) as h5:
        rgb_ds = image_dataset(h5, "rgb", (n, *hw, 3), np.uint8)
        depth_ds = image_dataset(h5, "depth", (n, *hw), np.float32)
        for row, frame in enumerate(tqdm(rows, desc=f"raw {folder}", unit="frame")):
            rgb_ds[row], depth_ds[row] = raw_image(scenes_dir, frame, hw)
            h5.raise_write_error()


def _assemble(
    out_path: Path, parts: list[Path], frames: list[RawFrame], cfg: PreprocessConfig
) -> None:
    n, hw = len(frames), cfg.resize_hw
    with NewH5File(out_path, track_order=False) as h5:
        rgb_ds = image_dataset(h5, "rgb", (n, *hw, 3), np.uint8)
        depth_ds = image_dataset(h5, "depth", (n, *hw), np.float32)
        h5.create_dataset(
            "index", data=np.array([f.index for f in frames], np.int64), track_times=False
        )
        for name, files in (
            ("raw_depth_file", [f"{f.folder}/{f.depth}" for f in frames]),
            ("raw_rgb_file", [f"{f.folder}/{f.rgb}" for f in frames]),
        ):
            h5.create_dataset(name, data=np.array(files, dtype="S"), track_times=False)
        h5.attrs["split"] = "train"
        h5.attrs["source"] = "raw"
        h5.attrs["resize_hw"] = cfg.resize_hw
        h5.attrs["crop_hw"] = cfg.crop_hw
        row = 0
        for part in parts:
            with h5py.File(part, "r") as src:
                for k in range(src["rgb"].shape[0]):
                    rgb_ds[row], depth_ds[row] = src["rgb"][k], src["depth"][k]
                    row += 1
            h5.raise_write_error()


def preprocess_raw(
    labeled: Path,
    splits: Path,
    frames_csv: Path,
    scenes_dir: Path,
    out_dir: Path,
    cfg: PreprocessConfig,
) -> tuple[Path, Path]:
    """``train.h5`` from the sampled raw frames, ``test.h5`` from the labeled test split."""
    frames = read_frames(frames_csv)
    if not frames:
        raise NYUFormatError(
            f"{frames_csv}: lists no raw frames: run the raw_frames stage with "
            "data.train_source: raw, or lower data.raw.step"
        )
    with open_labeled(labeled) as f:
        num_images = len(f)
    _, test_idx = read_splits(splits, num_images=num_images)
    train, test = Path(out_dir) / "train.h5", Path(out_dir) / "test.h5"
    work = work_dir(train, frames, cfg)
    with atomic_outputs(train, test) as (train_tmp, test_tmp):
        write_raw_train(frames, scenes_dir, train_tmp, work, cfg)
        write_split(labeled, test_idx, test_tmp, "test", cfg)
    shutil.rmtree(work)
    return train, test


def make_processed(
    data: DataConfig,
    raw_dir: Path,
    processed_dir: Path,
    raw_frames: Path | None,
    downloads_dir: Path | None,
) -> None:
    """train.h5 and test.h5: the labeled file's split, or raw frames for training."""
    labeled, splits = raw_dir / LABELED_NAME, raw_dir / SPLITS_NAME
    if data.train_source == "labeled":
        preprocess(labeled, splits, processed_dir, data.preprocess)
        return
    if raw_frames is None or downloads_dir is None:
        raise ValueError("data.train_source: raw needs --raw-frames and --downloads")
    scenes = archive_dir(downloads_dir, data.source) / SCENES_DIR
    preprocess_raw(labeled, splits, raw_frames, scenes, processed_dir, data.preprocess)
