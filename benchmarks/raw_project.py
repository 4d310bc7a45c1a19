"""Raw frames: ``project_depth`` alone, and the raw train.h5 build (sync + project + resize).

Prints one JSON object.

- ``project``: ``pipeline.data.raw.project_depth`` on a synthetic 640x480 frame (a disparity ramp
  with invalid stripes, random RGB); the first call builds the undistortion maps, timed apart.
- ``train_h5``: a synthetic raw twin (``--scenes`` x ``--frames``, generated into ``--workdir``,
  not timed) extracted and sampled at step 1, then ``write_raw_train`` at the paper's 240x320 in
  a fresh process each for the first half and for all frames, so the peak RSS of each is its
  own: two sizes give the memory growth per frame, extrapolated to ``--target`` frames (12k,
  the paper's). Frames/s is sync (listing + pairing) + read + project + resize + HDF5.
- ``real_dataset``: what the real raw set would cost at that speed: the 428 GB of archives at
  ``--mbit`` Mbit/s, the training scenes' frames unpacked (407,024 frames in all, the dataset
  page's count, times the training scenes' share 249/464, at a PGM + PPM pair's exact size).

    python benchmarks/raw_project.py --frames-project 20 --scenes 5 --frames 24
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.config import RawTwinConfig
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.raw import project_depth
from pipeline.data.raw.archives import extract_training_folders
from pipeline.data.raw.frames import sample_frames, write_frames
from pipeline.data.raw.scenes import split_scenes
from pipeline.data.synthetic.raw_twin import generate_raw_twin

ARCHIVES_GB = 428.0
RAW_FRAMES = 407_024  # the NYU Depth v2 page: "407,024 new unlabeled frames"
TRAIN_SCENE_SHARE = 249 / 464  # training scenes of all scenes (labeled file + splits.mat)
PAIR_BYTES = (len(b"P5\n640 480\n65535\n") + 640 * 480 * 2) + (
    len(b"P6\n640 480\n255\n") + 640 * 480 * 3
)

CHILD = """
import json, resource, sys, time
from pathlib import Path
from pipeline.config import PreprocessConfig
from pipeline.data.raw.frames import read_frames
from pipeline.data.raw.train_split import write_raw_train
frames = read_frames(Path(sys.argv[1]))[: int(sys.argv[2])]
out = Path(sys.argv[4])
start = time.perf_counter()
write_raw_train(frames, Path(sys.argv[3]), out, out.parent / ".work", PreprocessConfig(
    resize_hw=(240, 320), crop_hw=(228, 304)))
seconds = time.perf_counter() - start
peak = [resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(json.dumps({"frames": len(frames), "seconds": seconds, "peak_kib": peak}))
"""


def bench_project(frames: int) -> dict:
    rng = np.random.default_rng(0)
    disparity = np.tile(np.linspace(650, 1050, 640).astype(np.uint16), (480, 1))
    disparity[:, ::37] = 2047  # missing returns, as in real frames
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    start = time.perf_counter()
    project_depth(disparity, rgb)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(frames):
        project_depth(disparity, rgb)
    seconds = time.perf_counter() - start
    return {
        "frames": frames,
        "frames_per_s": round(frames / seconds, 2),
        "first_call_s": round(first, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def bench_train_h5(workdir: Path, scenes: int, frames: int, target: int) -> dict:
    raw, archives, scenes_dir = workdir / "raw", workdir / "archives", workdir / "scenes"
    if not (raw / LABELED_NAME).exists():
        twin = RawTwinConfig(scenes=scenes, frames=frames, labeled_per_scene=1)
        generate_raw_twin(raw, archives, twin, seed=0, test_fraction=0.2)
    train, _ = split_scenes(raw / LABELED_NAME, raw / SPLITS_NAME)
    folders = []
    for archive in sorted(archives.glob("*.zip")):
        folders += extract_training_folders(archive, train, scenes_dir)
    start = time.perf_counter()
    frame_list = sample_frames(
        scenes_dir, folders, 1, None, first_index=0
    )  # sync: listing, pairing
    sync_s = time.perf_counter() - start
    write_frames(workdir / "frames.csv", frame_list)
    runs = []
    for n in (len(frame_list) // 2, len(frame_list)):
        out = workdir / f"out{n}" / "train.h5"
        out.parent.mkdir(exist_ok=True)
        for stale in [out, *out.parent.glob(".work/*")]:
            stale.unlink(missing_ok=True)
        argv = [sys.executable, "-c", CHILD, str(workdir / "frames.csv"), str(n), str(scenes_dir)]
        result = subprocess.run([*argv, str(out)], capture_output=True, text=True, check=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    small, big = runs
    # The parent's peak plus the largest worker's, times the workers: an upper bound of the sum.
    workers = min(os.cpu_count() or 1, max(len(folders) // 2, 1))
    peaks = [r["peak_kib"][0] + workers * r["peak_kib"][1] for r in runs]
    per_frame_kib = (peaks[1] - peaks[0]) / (big["frames"] - small["frames"])
    fps = big["frames"] / (big["seconds"] + sync_s)
    return {
        "frames": [small["frames"], big["frames"]],
        "frames_per_s": round(fps, 2),
        "sync_s": round(sync_s, 4),
        "workers": workers,
        "peak_rss_mib": [round(p / 1024, 1) for p in peaks],
        "rss_growth_kib_per_frame": round(per_frame_kib, 2),
        f"peak_rss_mib_at_{target}_frames": round(
            (peaks[1] + max(per_frame_kib, 0) * (target - big["frames"])) / 1024, 1
        ),
        f"hours_for_{target}_frames": round(target / fps / 3600, 2),
    }


def real_dataset(mbit: float, fps: float, target: int) -> dict:
    unpacked_gb = RAW_FRAMES * TRAIN_SCENE_SHARE * PAIR_BYTES / 1e9
    return {
        "archives_gb": ARCHIVES_GB,
        f"download_hours_at_{mbit:g}_mbit": round(ARCHIVES_GB * 8e3 / mbit / 3600, 1),
        "training_scenes_unpacked_gb_est": round(unpacked_gb, 0),
        "disk_gb_archives_plus_unpacked_est": round(ARCHIVES_GB + unpacked_gb, 0),
        f"train_h5_hours_for_{target}_frames": round(target / fps / 3600, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames-project", type=int, default=20)
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--frames", type=int, default=24, help="per twin scene")
    parser.add_argument("--target", type=int, default=12_000)
    parser.add_argument("--mbit", type=float, default=100.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raw_bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    train_h5 = bench_train_h5(args.workdir, args.scenes, args.frames, args.target)
    result = {
        "project": bench_project(args.frames_project),
        "train_h5": train_h5,
        "real_dataset": real_dataset(args.mbit, train_h5["frames_per_s"], args.target),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
