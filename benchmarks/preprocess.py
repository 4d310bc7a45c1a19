"""Preprocess throughput and peak memory on a synthetic NYU-format file of (by default) 1449 images.

Prints one JSON object. The synthetic file is generated first (not timed) into --workdir, which can
be reused between runs; preprocessing runs in a child process so its peak RSS is measured alone.

    python benchmarks/preprocess.py --num-images 1449 --workdir /tmp/nyu1449
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.synthetic import generate

REPO = Path(__file__).resolve().parents[1]
# Runs in a fresh interpreter so ru_maxrss is the preprocessing peak alone (not the generator's).
CHILD = """
import json, resource, sys, time
from pathlib import Path
from pipeline.config import load_params
from pipeline.data.preprocess import preprocess
raw, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = load_params(sys.argv[3]).data.preprocess
start = time.perf_counter()
preprocess(raw / "{labeled}", raw / "{splits}", out, cfg)
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_kib": peak_kib}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-images", type=int, default=1449)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fcrn-bench-preprocess"))
    args = parser.parse_args()
    syn = load_params(REPO / "params.yaml").data.synthetic
    raw = args.workdir / f"raw-{args.num_images}-{syn.seed}"
    if not (raw / LABELED_NAME).exists():
        generate(raw, args.num_images, syn.seed, 654 / 1449)
    script = CHILD.format(labeled=LABELED_NAME, splits=SPLITS_NAME)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(raw),
            str(args.workdir / "processed"),
            str(REPO / "params.yaml"),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    seconds, peak_kib = measured["seconds"], measured["peak_kib"]  # ru_maxrss is KiB on Linux
    print(
        json.dumps(
            {
                "benchmark": "preprocess",
                "num_images": args.num_images,
                "seconds": round(seconds, 2),
                "images_per_s": round(args.num_images / seconds, 1),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "labeled_mat_mib": round((raw / LABELED_NAME).stat().st_size / 2**20, 1),
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
