"""DVC stage `raw_selfcheck`: the port against the toolbox's own ``rawDepths`` (a DVC metric).

With ``data.train_source: labeled`` no raw frames are on disk: it records zero frames.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.raw.selfcheck import selfcheck_for
from pipeline.io import atomic_write_json, remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_dir", type=Path, help="folder with the labeled file")
    parser.add_argument("downloads_dir", type=Path, help="where the raw scenes were extracted")
    parser.add_argument("metric", type=Path, help="JSON metric to write")
    args = parser.parse_args(argv)
    remove_stale_temps(args.metric)
    result = selfcheck_for(load_params().data, args.raw_dir, args.downloads_dir)
    atomic_write_json(args.metric, result)


if __name__ == "__main__":
    run_stage(main)
