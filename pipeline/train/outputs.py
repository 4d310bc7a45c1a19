"""What a finished training publishes, all at once: the model file, the per-epoch log and the
wall-clock numbers; and the DDP check that every rank holds the weights being published."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pipeline import train_log
from pipeline.io import atomic_outputs, writing
from pipeline.model.io import model_bytes
from pipeline.runtime import Runtime


@dataclass(frozen=True)
class TrainOutputs:
    """Where a training run publishes its results (all at once, at the end)."""

    model: Path
    log_csv: Path
    speed_json: Path
    checkpoint_dir: Path


def check_ranks_agree(model: nn.Module, rt: Runtime) -> None:
    """DDP keeps replicas equal only if every rank did the same steps: verify before saving.

    BatchNorm's running statistics are rank 0's (DDP broadcasts them before each forward), but
    each rank's last step updated its own from its own batch: rank 0's are broadcast once more,
    so the ranks are compared, and hold, the model rank 0 saves."""
    if rt.world_size == 1:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
    sums = torch.stack([t.detach().double().sum() for t in model.state_dict().values()])
    gathered = [torch.empty_like(sums) for _ in range(rt.world_size)]
    dist.all_gather(gathered, sums)
    if any(not torch.equal(g, sums) for g in gathered):
        raise RuntimeError("DDP ranks ended with different weights: a bug, please report it")
    if rt.is_main:
        print(f"DDP: all {rt.world_size} ranks hold identical weights")


def write_outputs(
    outputs: TrainOutputs,
    model: nn.Module,
    model_config: dict[str, Any],
    sizes: tuple[tuple[int, int], tuple[int, int]],
    rows: list[dict[str, float]],
    timing: list[dict[str, float]],
    rt: Runtime,
    compiled: bool,
) -> None:
    """Publish the model (with its (frame, crop) ``sizes``), the per-epoch log and the
    wall-clock numbers together."""
    with atomic_outputs(outputs.model, outputs.log_csv, outputs.speed_json) as (m, log, speed):
        with writing(m):
            m.write_bytes(model_bytes(model, model_config, *sizes))
        with writing(log):
            log.write_text(train_log.to_csv(rows))
        seconds = [t["seconds"] for t in timing]
        with writing(speed):
            speed.write_text(
                json.dumps(
                    {
                        "seconds_per_epoch": round(float(np.mean(seconds)), 2),
                        "images_per_second": round(
                            float(np.mean([t["images_per_s"] for t in timing])), 2
                        ),
                        "train_seconds": round(float(np.sum(seconds)), 1),
                        # compile, cuDNN autotuning and loader start: outside images_per_second
                        "first_step_seconds": round(
                            float(max(t.get("first_step_seconds", 0.0) for t in timing)), 2
                        ),
                        "compile": compiled,
                        "device": str(rt.device.type),
                        "precision": rt.precision,
                        "processes": rt.world_size,
                        **rt.kernels,
                    },
                    indent=2,
                    sort_keys=True,
                )
                + "\n"
            )
