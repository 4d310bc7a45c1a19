"""DVC stage `raw_selfcheck`: the port against the toolbox's own ``rawDepths`` (a DVC metric).

With ``data.train_source: labeled`` no raw frames are on disk: it records zero frames.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.nyu import LABELED_NAME
from pipeline.data.raw.archives import SCENES_DIR, archive_dir
from pipeline.data.raw.selfcheck import selfcheck
from pipeline.io import atomic_write_json, remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path, help="folder with the labeled file")
    parser.add_argument("downloads_dir", type=Path, help="where the raw scenes were extracted")
    parser.add_argument("metric", type=Path, help="JSON metric to write")
    args = parser.parse_args(argv)
    remove_stale_temps(args.metric)
    data = load_params().data
    if data.train_source == "labeled":
        result = {"frames": 0, "within_1cm_mean": None, "within_1cm_min": None, "per_frame": {}}
    else:
        scenes = archive_dir(args.downloads_dir, data.source) / SCENES_DIR
        result = selfcheck(args.raw_dir / LABELED_NAME, scenes)
        print(
            f"raw self-check: {result['frames']} labeled frames, within 1 cm: mean "
            f"{result['within_1cm_mean']}, min {result['within_1cm_min']}"
        )
    atomic_write_json(args.metric, result)


if __name__ == "__main__":
    run_stage(main)
