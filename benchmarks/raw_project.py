"""Throughput and peak memory of ``pipeline.data.raw.project_depth`` on 640x480 Kinect frames.

Prints one JSON object. The frames are synthetic (a disparity ramp with invalid stripes and
random RGB); the undistortion maps are built by the first call, which is timed separately.

    python benchmarks/raw_project.py --frames 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np

from pipeline.data.raw import project_depth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    disparity = np.tile(np.linspace(650, 1050, 640).astype(np.uint16), (480, 1))
    disparity[:, ::37] = 2047  # missing returns, as in real frames
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)

    start = time.perf_counter()
    project_depth(disparity, rgb)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.frames):
        project_depth(disparity, rgb)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "frames": args.frames,
                "frames_per_s": round(args.frames / seconds, 2),
                "seconds_per_frame": round(seconds / args.frames, 4),
                "first_call_s": round(first, 4),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
