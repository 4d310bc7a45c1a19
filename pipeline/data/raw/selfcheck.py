"""Agreement of this port with the toolbox on the real data: re-project the labeled frames.

The labeled file's ``rawDepths`` are the toolbox's ``project_depth_map`` of the raw frames
``rawDepthFilenames``/``rawRgbFilenames``. For every labeled image whose two raw files were
extracted, :func:`pipeline.data.raw.project_depth` is run on them and compared pixel by pixel:
the fraction of pixels (where either has depth) within 1 cm. A port that drifted from the
toolbox (byte order, pairing, axis order, z-buffer) shows here as a fraction far below 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from pipeline.config import DataConfig
from pipeline.data.nyu import LABELED_NAME
from pipeline.data.raw.archives import SCENES_DIR, archive_dir
from pipeline.data.raw.netpbm import read_pgm, read_ppm
from pipeline.data.raw.project import project_depth
from pipeline.data.raw.scenes import folder_scene, read_cellstr

TOLERANCE_M = 0.01


def _extracted(scenes_dir: Path) -> dict[tuple[str, str], Path]:
    """(scene, file name) -> path of every extracted raw file (folders may carry a letter)."""
    found = {}
    for folder in sorted(Path(scenes_dir).iterdir()) if Path(scenes_dir).is_dir() else []:
        if folder.is_dir() and not folder.name.startswith("."):
            for file in folder.iterdir():
                found[(folder_scene(folder.name), file.name)] = file
    return found


def _locate(files: dict[tuple[str, str], Path], name: str) -> Path | None:
    folder, _, base = name.replace("\\", "/").rpartition("/")
    return files.get((folder_scene(folder), base))


def agreement(projected: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of the pixels where either map has depth on which they agree within 1 cm."""
    either = (projected > 0) | (reference > 0)
    if not either.any():
        return 1.0
    return float((np.abs(projected - reference) <= TOLERANCE_M)[either].mean())


def selfcheck(labeled: Path, scenes_dir: Path) -> dict[str, Any]:
    """The metric: per labeled frame found, and the mean and minimum over them."""
    files = _extracted(scenes_dir)
    depth_names = read_cellstr(labeled, "rawDepthFilenames")
    rgb_names = read_cellstr(labeled, "rawRgbFilenames")
    per_frame: dict[str, float] = {}
    with h5py.File(labeled, "r") as h5:
        raw_depths = h5["rawDepths"]
        pairs = list(enumerate(zip(depth_names, rgb_names, strict=True)))
        for i, (depth_name, rgb_name) in tqdm(pairs, desc="raw self-check", unit="img"):
            depth_path, rgb_path = _locate(files, depth_name), _locate(files, rgb_name)
            if depth_path is None or rgb_path is None:
                continue
            projected, _ = project_depth(read_pgm(depth_path), read_ppm(rgb_path))
            per_frame[depth_name] = round(agreement(projected, raw_depths[i].T), 6)
    values = list(per_frame.values())
    return {
        "frames": len(values),
        "within_1cm_mean": round(float(np.mean(values)), 6) if values else None,
        "within_1cm_min": min(values) if values else None,
        "per_frame": per_frame,
    }


def selfcheck_for(data: DataConfig, raw_dir: Path, downloads_dir: Path) -> dict[str, Any]:
    """The raw port's agreement with the labeled depth (no frames with labeled training)."""
    if data.train_source == "labeled":
        return {"frames": 0, "within_1cm_mean": None, "within_1cm_min": None, "per_frame": {}}
    scenes = archive_dir(downloads_dir, data.source) / SCENES_DIR
    result = selfcheck(raw_dir / LABELED_NAME, scenes)
    print(
        f"raw self-check: {result['frames']} labeled frames, within 1 cm: mean "
        f"{result['within_1cm_mean']}, min {result['within_1cm_min']}"
    )
    return result
