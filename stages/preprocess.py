"""DVC stage `preprocess`: raw .mat -> train.h5 / test.h5 (layout: pipeline.data.preprocess).

With ``data.train_source: raw``, train.h5 holds the frames of ``--raw-frames`` instead
(pipeline.data.raw.train_split); test.h5 is the labeled test split either way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.raw.train_split import make_processed
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
    make_processed(data, args.raw_dir, args.processed_dir, args.raw_frames, args.downloads)


if __name__ == "__main__":
    run_stage(main)
