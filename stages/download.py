"""DVC stage `download`: put the NYU labeled .mat and splits.mat into the raw data folder.

Generated offline (``data.source: synthetic``) or fetched and linked (``nyu``): see
`pipeline.data.sources`. With DVC's link cache types (``.dvc/config``) the raw files cost no
space beyond DVC's cache and the downloads folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.data.sources import obtain_raw_files
from pipeline.io import remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path, help="folder for the two raw files (DVC outputs)")
    parser.add_argument("downloads_dir", type=Path, help="where real downloads are kept")
    args = parser.parse_args(argv)
    remove_stale_temps(args.raw_dir / LABELED_NAME, args.raw_dir / SPLITS_NAME)
    obtain_raw_files(load_params().data, args.raw_dir, args.downloads_dir)


if __name__ == "__main__":
    run_stage(main)
