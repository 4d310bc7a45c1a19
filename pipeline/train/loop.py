"""One epoch of training: the step loop, divergence detection without per-step host syncs,
and the validation pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.config import TrainConfig
from pipeline.inference import predict_depth
from pipeline.metrics import laina_metrics
from pipeline.model.loss import LossFn
from pipeline.runtime import Runtime
from pipeline.train.setup import TrainData

EpochHook = Callable[[dict[str, float]], None]


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: bad data or a too-high learning rate."""


def validate(
    model: nn.Module, loader: DataLoader | None, rt: Runtime, out_hw: tuple[int, int]
) -> dict[str, float]:
    """Eval-mode metrics on the held-out part of the train split (one global pixel mean)."""
    if loader is None:
        return {}
    preds, gts = [], []
    for batch in loader:
        x = batch["rgb"].to(rt.device)
        if rt.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        preds.append(predict_depth(model, x, out_hw, rt.autocast_dtype).cpu())
        gts.append(batch["depth"][:, 0])
    return {f"val_{k}": v for k, v in laina_metrics(preds, gts).items()}


class _FirstBadStep:
    """The first step of an epoch with non-finite input or loss, recorded on the device.

    Updating it queues a few tiny kernels and never waits; `check` (every `train.sync_every`
    steps) reads it, one host sync, and raises naming the step where it happened.
    """

    def __init__(self, device: torch.device) -> None:
        self.step = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_input = torch.zeros((), dtype=torch.bool, device=device)
        self.loss = torch.zeros((), device=device)
        self.indices: dict[int, torch.Tensor] = {}  # step -> image indices (host), since a check

    def update(
        self, step: int, x: torch.Tensor, y: torch.Tensor, loss: torch.Tensor, indices: torch.Tensor
    ) -> None:
        finite_input = torch.isfinite(x).all() & torch.isfinite(y).all()
        new = (self.step < 0) & ~(finite_input & torch.isfinite(loss))
        self.step = torch.where(new, step, self.step)
        self.bad_input = torch.where(new, ~finite_input, self.bad_input)
        self.loss = torch.where(new, loss.detach(), self.loss)
        self.indices[step] = indices

    def check(self, where: str) -> None:
        step = int(self.step)  # the host sync
        if step >= 0:
            at = f"{where}, step {step + 1}"
            indices = f"0-based image indices of the batch: {self.indices[step].tolist()}"
            # The loss skips depth <= 0 and so would silently skip NaN depth: refuse it here.
            if bool(self.bad_input):
                raise TrainingDiverged(f"{at}: non-finite RGB or depth ({indices})")
            raise TrainingDiverged(
                f"{at}: loss is {float(self.loss)} ({indices}); lower train.lr "
                "(a NaN loss also means a batch without valid depth)"
            )
        self.indices.clear()


@dataclass(frozen=True)
class EpochStats:
    loss: float  # mean training loss
    seconds: float  # wall clock, first step included
    images_per_s: float  # after the first step when `first_step_s` is set
    first_step_s: float | None  # the process's first step: compile, autotuning, loader start


def train_epoch(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: LossFn,
    data: TrainData,
    epoch: int,
    cfg: TrainConfig,
    rt: Runtime,
    where: str,
    time_first_step: bool,
) -> EpochStats:
    """One pass over the training batches; the device is waited for only every
    `cfg.sync_every` steps (and after the first step when `time_first_step`)."""
    net.train()
    total = torch.zeros((), device=rt.device)
    bad = _FirstBadStep(rt.device)
    steps, batch_images = len(data.train), cfg.batch_size * rt.world_size
    first_step_s = None
    memory_format = torch.channels_last if rt.channels_last else torch.contiguous_format
    bar = tqdm(
        data.train, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not rt.is_main
    )
    started = time.perf_counter()
    for step, batch in enumerate(bar):
        x = batch["rgb"].to(rt.device, non_blocking=True)
        y = batch["depth"].to(rt.device, non_blocking=True)
        x = x.contiguous(memory_format=memory_format)  # one layout, one kernel choice: any path
        with rt.autocast():
            out = net(x)
        # Loss in float32 at the ground truth's resolution.
        pred = F.interpolate(out.float(), size=y.shape[-2:], mode="bilinear", align_corners=False)
        loss = loss_fn(pred, y)
        bad.update(step, x, y, loss, batch["index"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach()
        first = step == 0 and time_first_step
        if first or (step + 1) % cfg.sync_every == 0 or step + 1 == steps:
            bad.check(where)
            bar.set_postfix(loss=f"{float(total) / (step + 1):.4f}")
            if first:
                first_step_s = time.perf_counter() - started
    seconds = time.perf_counter() - started
    if first_step_s is not None and steps > 1:
        rate = (steps - 1) * batch_images / (seconds - first_step_s)
    else:
        rate = steps * batch_images / seconds
    return EpochStats(float(total) / steps, seconds, rate, first_step_s)
