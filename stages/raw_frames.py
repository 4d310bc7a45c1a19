"""DVC stage `raw_frames`: the raw Kinect frames that train, when ``data.train_source: raw``.

Which archives, where they go and how frames are sampled: `pipeline.data.raw.collect`. The
sampled frame list is a DVC output; with ``train_source: labeled`` it holds the header alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.raw.collect import collect_frames
from pipeline.data.raw.frames import write_frames
from pipeline.io import remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path, help="folder with the labeled file and splits.mat")
    parser.add_argument("downloads_dir", type=Path, help="where archives and scenes are kept")
    parser.add_argument("frames_csv", type=Path, help="the sampled frame list (DVC output)")
    args = parser.parse_args(argv)
    remove_stale_temps(args.frames_csv)
    frames = collect_frames(load_params().data, args.raw_dir, args.downloads_dir)
    write_frames(args.frames_csv, frames)


if __name__ == "__main__":
    run_stage(main)
