"""DVC stage `preprocess`: raw .mat -> train.h5 / test.h5 (layout: pipeline.data.preprocess)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.preprocess import preprocess
from pipeline.io import remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("processed_dir", type=Path)
    args = parser.parse_args(argv)
    remove_stale_temps(args.processed_dir / "train.h5", args.processed_dir / "test.h5")
    cfg = load_params().data.preprocess
    preprocess(args.raw_dir / LABELED_NAME, args.raw_dir / SPLITS_NAME, args.processed_dir, cfg)


if __name__ == "__main__":
    run_stage(main)
