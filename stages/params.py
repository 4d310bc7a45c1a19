"""DVC stage `params`: validate every section of params.yaml before any other stage runs.

DVC runs a stage only when the params it lists change, so a bad value in a section whose stage
is up to date (or reads no params at all yet) would pass unnoticed. This stage depends on the
whole file and `download` depends on its output, so every `dvc repro` / `dvc exp run` checks
every key first and stops with the dotted key of each bad one. The output names the sections,
not their values: an edit re-runs this one-second check and nothing that does not read the key.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.io import atomic_write_text, remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("params", type=Path, help="the params file (params.yaml)")
    parser.add_argument("out", type=Path, help="written when every section is valid")
    args = parser.parse_args(argv)
    remove_stale_temps(args.out)
    sections = load_params(args.params).model_dump(by_alias=True)
    atomic_write_text(args.out, f"{args.params}: valid sections {', '.join(sections)}\n")


if __name__ == "__main__":
    run_stage(main)
