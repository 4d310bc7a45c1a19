"""Validation throughput on processed files of NYU size (795 train + 654 test = 1449 images).

Prints one JSON object. The processed pair (random content, the preprocess layout: train
240x320, test 228x304 plus 480x640 ``depth_full``, one image per HDF5 chunk) is written into
--workdir first and not timed; it can be reused between runs. Then it times the GX import, the
per-image statistics of each split and the Great Expectations run.

    python benchmarks/validate.py --workdir /tmp/validate-bench
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import h5py
import numpy as np

SPLIT_SIZES = {"train": 795, "test": 654}  # NYU Depth v2 labeled, official split
SPLIT_HW = {"train": (240, 320), "test": (228, 304)}
FULL_HW = (480, 640)


def write_split(path: Path, split: str, indices: np.ndarray, seed: int) -> None:
    """Random uint8 RGB and 0.5-9.5 m depth, written one image at a time to bound memory."""
    rng = np.random.default_rng(seed)
    n, hw = len(indices), SPLIT_HW[split]
    shapes = {"rgb": ((n, *hw, 3), np.uint8), "depth": ((n, *hw), np.float32)}
    if split == "test":
        shapes["depth_full"] = ((n, *FULL_HW), np.float32)
    with h5py.File(path, "w") as h5:
        datasets = {
            name: h5.create_dataset(name, shape=shape, dtype=dtype, chunks=(1, *shape[1:]))
            for name, (shape, dtype) in shapes.items()
        }
        h5["index"] = indices
        h5.attrs["split"] = split
        for row in range(n):
            for ds in datasets.values():
                if ds.dtype == np.uint8:
                    ds[row] = rng.integers(0, 256, ds.shape[1:], dtype=np.uint8)
                else:
                    ds[row] = rng.uniform(0.5, 9.5, ds.shape[1:]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    order = np.random.default_rng(0).permutation(sum(SPLIT_SIZES.values()))
    expected = {"train": np.sort(order[:795]), "test": np.sort(order[795:])}
    paths = {split: args.workdir / f"{split}.h5" for split in SPLIT_SIZES}
    args.workdir.mkdir(parents=True, exist_ok=True)
    for seed, (split, path) in enumerate(paths.items()):
        if not path.exists():
            write_split(path, split, expected[split], seed)

    start = time.perf_counter()
    from pipeline.config import load_params
    from pipeline.data.validation import image_stats, validate_tables

    import_s = time.perf_counter() - start
    cfg = load_params().validate  # the project's own settings
    timings, tables = {}, {}
    for split, path in paths.items():
        start = time.perf_counter()
        tables[split] = image_stats(path, split, progress=False)
        timings[f"stats_{split}_s"] = time.perf_counter() - start
    start = time.perf_counter()
    report = validate_tables(tables, expected, cfg)
    timings["great_expectations_s"] = time.perf_counter() - start
    images = sum(len(t) for t in tables.values())
    total = sum(timings.values())
    result = {
        "images": images,
        "success": report["success"],
        "import_s": round(import_s, 3),
        **{k: round(v, 3) for k, v in timings.items()},
        "total_s_without_import": round(total, 3),
        "images_per_s": round(images / total, 1),
        "bytes_read": sum(p.stat().st_size for p in paths.values()),
        "machine": f"{platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
