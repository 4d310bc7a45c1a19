"""The orchestrating `train`: set up, resume, run the epochs with a checkpoint after each,
publish the outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pipeline.config import ModelConfig, TrainConfig
from pipeline.model.loss import LossFn, get_loss
from pipeline.runtime import Runtime, barrier
from pipeline.train.checkpoint import (
    checkpoint_path,
    checkpoint_state,
    clear_stale_files,
    resume,
    save_checkpoint,
)
from pipeline.train.loop import EpochHook, train_epoch, validate
from pipeline.train.outputs import TrainOutputs, check_ranks_agree, write_outputs
from pipeline.train.setup import TrainData, build_data, make_optimizer, model_on_device
from pipeline.train.setup import scheduler as make_scheduler


@dataclass
class _Training:
    """The state one epoch reads and advances; `model` is ``net`` before DDP and compile wrap it."""

    model: nn.Module
    net: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    loss_fn: LossFn
    data: TrainData
    cfg: TrainConfig
    rt: Runtime
    train_h5: Path

    def epoch(self, epoch: int, first: bool) -> tuple[dict[str, float], dict[str, float]]:
        """Train one epoch and validate; return its log row and its timing."""
        self.data.set_epoch(epoch)
        lr = self.opt.param_groups[0]["lr"]
        stats = train_epoch(
            self.net, self.opt, self.loss_fn, self.data, epoch, self.cfg, self.rt,
            f"{self.train_h5}: epoch {epoch + 1}", time_first_step=first,
        )  # fmt: skip
        val = validate(self.model, self.data.val, self.rt, self.data.crop_hw)
        if self.cfg.schedule == "plateau":
            self.sched.step(val["val_rel"])
        else:
            self.sched.step()
        row = {"epoch": epoch + 1, "train_loss": stats.loss, "lr": lr, **val}
        timing = {"seconds": stats.seconds, "images_per_s": stats.images_per_s}
        if stats.first_step_s is not None:
            timing["first_step_seconds"] = stats.first_step_s
        if self.rt.is_main:
            summary = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
            tqdm.write(f"epoch {epoch + 1}: {summary}, {stats.images_per_s:.1f} img/s")
        return row, timing


def _wrap(model: nn.Module, cfg: TrainConfig, rt: Runtime) -> nn.Module:
    """The module the steps run: DDP across processes, compiled when asked."""
    net: nn.Module = DistributedDataParallel(model) if rt.world_size > 1 else model
    return torch.compile(net) if cfg.compile else net


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    train_h5: Path,
    outputs: TrainOutputs,
    rt: Runtime,
    key: str,
    on_epoch: EpochHook | None = None,
    weights_dir: Path = Path("data/downloads"),
) -> dict[str, float]:
    """Train, checkpointing every epoch; return the last epoch's log row.

    ``key`` names the checkpoint (`pipeline.identity.TrainingIdentity`): only a training with
    the same key resumes from it. `on_epoch` receives each epoch's log row on rank 0 (live
    experiment tracking); ``weights_dir`` keeps downloaded initial weights.
    """
    data = build_data(cfg, train_h5, rt)
    model, model_config = model_on_device(model_cfg, cfg, train_h5, data, rt, weights_dir)
    opt = make_optimizer(cfg, model.parameters())
    sched = make_scheduler(cfg, opt)
    ckpt = checkpoint_path(outputs, key)
    rows, timing, start_epoch = resume(ckpt, model, opt, sched, rt)
    if rt.is_main:
        clear_stale_files(outputs, keep=ckpt)
    net = _wrap(model, cfg, rt)
    run = _Training(model, net, opt, sched, get_loss(cfg.loss), data, cfg, rt, train_h5)
    if cfg.epochs == 0:  # publish model.init's weights as they are, with their validation
        rows = [{"epoch": 0, **validate(model, data.val, rt, data.crop_hw)}]
        timing = [{"seconds": 0.0, "images_per_s": 0.0}]

    for epoch in range(start_epoch, cfg.epochs):
        row, times = run.epoch(epoch, first=epoch == start_epoch)
        rows.append(row)
        timing.append(times)
        if rt.is_main:
            save_checkpoint(ckpt, checkpoint_state(key, epoch + 1, model, opt, sched, rows, timing))
            if on_epoch is not None:
                on_epoch(row)
        barrier()
    check_ranks_agree(model, rt)
    if rt.is_main:
        # SyncBatchNorm keeps BatchNorm2d's state_dict keys: the file loads into a plain FCRN.
        sizes = (data.resize_hw, data.crop_hw)
        write_outputs(outputs, model, model_config, sizes, rows, timing, rt, cfg.compile)
        ckpt.unlink(missing_ok=True)
    barrier()
    return rows[-1] if rows else {}
