"""DVC stage `preprocess`: raw .mat -> train.h5 / test.h5 (layout: pipeline.data.preprocess).

With ``data.train_source: raw``, train.h5 holds the frames of ``--raw-frames`` instead
(pipeline.data.raw.train_split); test.h5 is the labeled test split either way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.preprocess import preprocess
from pipeline.data.raw.archives import SCENES_DIR, archive_dir
from pipeline.data.raw.train_split import preprocess_raw
from pipeline.io import remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("processed_dir", type=Path)
    parser.add_argument("--raw-frames", type=Path, help="frame list of the raw_frames stage")
    parser.add_argument("--downloads", type=Path, help="downloads folder holding raw scenes")
    args = parser.parse_args(argv)
    remove_stale_temps(args.processed_dir / "train.h5", args.processed_dir / "test.h5")
    data = load_params().data
    labeled, splits = args.raw_dir / LABELED_NAME, args.raw_dir / SPLITS_NAME
    if data.train_source == "labeled":
        preprocess(labeled, splits, args.processed_dir, data.preprocess)
        return
    if args.raw_frames is None or args.downloads is None:
        parser.error("data.train_source: raw needs --raw-frames and --downloads")
    scenes = archive_dir(args.downloads, data.source) / SCENES_DIR
    preprocess_raw(labeled, splits, args.raw_frames, scenes, args.processed_dir, data.preprocess)


if __name__ == "__main__":
    run_stage(main)
