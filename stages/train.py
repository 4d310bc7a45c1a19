"""DVC stage `train`: processed train split -> models/fcrn.pt, reports/train_log.csv.

Tracking is checked first: an unreachable MLflow server stops the stage within seconds, before
any data is read. Rank 0 logs each epoch live to one MLflow run, which a resumed run continues.

`train.nproc` > 1 re-launches this script under torchrun (DDP: NCCL on GPUs, gloo on the CPU);
starting it with `torchrun --nproc_per_node N stages/train.py ...` directly works the same.
A run killed at any point resumes from its last epoch checkpoint when the stage runs again; the
ranks die with this process (`runtime.die_with_launcher`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from pipeline import portable, runtime, tracking
from pipeline.config import Params, read_params
from pipeline.identity import TrainingIdentity
from pipeline.model.build import weights_provenance
from pipeline.stage import run_stage
from pipeline.train import EpochHook, TrainOutputs, train


@contextmanager
def _tracked(
    rt: runtime.Runtime,
    params: Params,
    params_raw: dict[str, Any],
    args: argparse.Namespace,
    identity: TrainingIdentity,
) -> Iterator[EpochHook | None]:
    """The per-epoch MLflow logger on rank 0 (the run id lives beside the checkpoints); the
    run is tagged with where the initial weights came from (URL and checksum)."""
    if not rt.is_main:
        yield None
        return
    state_file = args.checkpoint_dir / "mlflow_run.json"
    with tracking.training_run(
        params_raw, params.mlflow, state_file, identity, rt.describe()
    ) as run:
        for key, value in weights_provenance(params.model).items():
            run.client.set_tag(run.run_id, key, value)
        yield lambda row: run.log_epoch(row, int(row["epoch"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("train_h5", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("log_csv", type=Path)
    parser.add_argument("speed_json", type=Path)
    parser.add_argument("checkpoint_dir", type=Path, help="resume state (not a DVC output)")
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=Path("data/downloads"),
        help="where model.init downloads are kept (not a DVC output)",
    )
    args = parser.parse_args(argv)
    params, params_raw = read_params()
    cfg = params.train
    portable.pin(cfg.reproducible)  # before any work: it may restart this process, pinned
    tracking.connect()
    if cfg.nproc > 1 and not runtime.launched_by_torchrun():
        os.environ[runtime.LAUNCHER_PID] = str(os.getpid())  # the ranks' parent: this process
        try:
            torchrun.main(
                ["--standalone", f"--nproc_per_node={cfg.nproc}", __file__, *sys.argv[1:]]
            )
        except ChildFailedError as e:  # each rank printed its own `error:` line already
            raise ValueError(
                f"{cfg.nproc} DDP training processes: {e.get_first_failure()[1]}"
            ) from None
        return
    outputs = TrainOutputs(args.model, args.log_csv, args.speed_json, args.checkpoint_dir)
    rt = runtime.setup(cfg)
    identity = TrainingIdentity.of(params, args.train_h5, rt.world_size)
    try:
        with _tracked(rt, params, params_raw, args, identity) as on_epoch:
            last = train(
                params.model,
                cfg,
                args.train_h5,
                outputs,
                rt,
                identity.key,
                on_epoch,
                args.weights_dir,
            )
    finally:
        runtime.teardown()
    if rt.is_main:
        print(f"model: {args.model}; last epoch: {last}")


if __name__ == "__main__":
    run_stage(main)
