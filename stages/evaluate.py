"""DVC stage `evaluate`: the trained model on the test split under the laina, eigen and crop
protocols, next to the train-mean baseline.

metrics.json, predictions.png and train_curves.png are published together or not at all, so a
failed run never leaves new metrics beside the plots of an older model. It runs under training's
`train.reproducible` regime (pipeline.portable), so the whole dvc.lock is portable or none of it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import portable
from pipeline.config import load_params
from pipeline.evaluate import evaluate, metrics_json, summarize
from pipeline.io import atomic_outputs, remove_stale_temps, writing
from pipeline.plots import plot_predictions, plot_train_curves, read_train_log
from pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path, help="trained model file (models/fcrn.pt)")
    parser.add_argument("test_h5", type=Path, help="processed test split")
    parser.add_argument("train_h5", type=Path, help="processed train split (baseline mean depth)")
    parser.add_argument("train_log_csv", type=Path, help="per-epoch training log")
    parser.add_argument("reports_dir", type=Path)
    args = parser.parse_args(argv)
    dests = [
        args.reports_dir / name for name in ("metrics.json", "predictions.png", "train_curves.png")
    ]
    params = load_params()
    portable.pin(params.train.reproducible)  # before any work: it may restart this process
    remove_stale_temps(*dests)
    train_log = read_train_log(args.train_log_csv)  # fail before the long part, not after
    result = evaluate(
        args.model, args.test_h5, args.train_h5, params.eval, params.train.reproducible
    )
    with atomic_outputs(*dests) as (metrics_tmp, predictions_tmp, curves_tmp):
        with writing(metrics_tmp):
            metrics_tmp.write_text(metrics_json(result.metrics))
        with writing(predictions_tmp):
            plot_predictions(result.examples, predictions_tmp)
        with writing(curves_tmp):
            plot_train_curves(train_log, curves_tmp)
    print(summarize(result.metrics))
    print(f"reports: {', '.join(str(d) for d in dests)}")


if __name__ == "__main__":
    run_stage(main)
