"""DVC stage `validate`: refuse broken processed data before training spends GPU hours on it.

Writes the JSON and HTML reports first (the report of a failure is the useful artefact), prints
a summary, and when any expectation fails ends with an `error:` line and exit status 1, so
`dvc repro` stops before `train`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config import load_params
from pipeline.data.nyu import read_splits
from pipeline.data.raw.frames import train_indices
from pipeline.data.validation import summarize, validate_processed, write_report
from pipeline.io import remove_stale_temps
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("processed_dir", type=Path, help="folder with train.h5 and test.h5")
    parser.add_argument("splits", type=Path, help="NYU splits.mat")
    parser.add_argument("report_json", type=Path)
    parser.add_argument("report_html", type=Path)
    parser.add_argument("--raw-frames", type=Path, help="raw frame list (train_source: raw)")
    args = parser.parse_args(argv)
    remove_stale_temps(args.report_json, args.report_html)
    params = load_params()
    train_idx, test_idx = read_splits(args.splits)
    train_idx, raw_frames = train_indices(params.data, train_idx, args.raw_frames)
    report = validate_processed(
        args.processed_dir / "train.h5",
        args.processed_dir / "test.h5",
        {"train": train_idx, "test": test_idx},
        params.validate,
        raw_frames=raw_frames,
    )
    write_report(report, args.report_json, args.report_html)
    print(summarize(report))
    print(f"report: {args.report_json}, {args.report_html}")
    if not report["success"]:
        print(
            f"error: {args.processed_dir} failed validation (failures above, details in "
            f"{args.report_html}): fix the data, or the thresholds validate.* in params.yaml",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)
