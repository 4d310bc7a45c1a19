"""DVC stage `register`: the evaluated model into the MLflow registry, promoted only on merit.

What is logged and when `champion` moves: `pipeline.registry`. reports/registration.json holds
the version, the decision and its reason, and no run ids or times: re-running reproduces it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import read_params
from pipeline.io import atomic_write_json
from pipeline.registry import register
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path, help="models/fcrn.pt")
    parser.add_argument("metrics", type=Path, help="reports/metrics.json")
    parser.add_argument("train_log", type=Path, help="reports/train_log.csv")
    parser.add_argument("train_h5", type=Path, help="processed train split (the run's data)")
    parser.add_argument("test_h5", type=Path, help="processed test split (what was evaluated)")
    parser.add_argument("run_state", type=Path, help="side file with the training's run id")
    parser.add_argument("out", type=Path, help="reports/registration.json")
    parser.add_argument("--artifacts", type=Path, nargs="*", default=[], help="reports to log")
    args = parser.parse_args(argv)
    result = register(
        args.model,
        args.metrics,
        args.train_log,
        args.train_h5,
        args.test_h5,
        args.run_state,
        args.artifacts,
        read_params()[1],
    )
    atomic_write_json(args.out, result)
    name, version = result["registered_model"], result["version"]
    print(f"{name} v{version}: {result['decision']} ({result['reason']})")


if __name__ == "__main__":
    run_stage(main)
