"""The training loop: FCRN on the processed train split, one epoch at a time, resumable.

Every epoch ends with a checkpoint (model, optimizer, scheduler, RNG state, log rows) written
atomically under a name derived from the params and data it belongs to (`run_key`). Re-running
after a kill resumes from it and ends with the weights an uninterrupted run would have (on the
CPU, bit for bit): the data order and augmentations are functions of (seed, epoch, image), not
of how far a generator had advanced. A finished run deletes its checkpoint, and a run with other
params or data never resumes from a checkpoint that is not its own.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from pipeline.config import ModelConfig, TrainConfig
from pipeline.data.dataset import DepthDataset, DeviceSplit, make_loader, mean_depth, split_rows
from pipeline.inference import predict_depth
from pipeline.io import atomic_outputs, atomic_path, md5sum, remove_stale_temps, writing
from pipeline.metrics import KEYS, laina_metrics
from pipeline.model.build import build_model
from pipeline.model.io import model_bytes
from pipeline.model.loss import LossFn, get_loss
from pipeline.runtime import Runtime, barrier, resolve_data_on

LOG_COLUMNS = ("epoch", "train_loss", "lr", *(f"val_{k}" for k in KEYS))
EpochHook = Callable[[dict[str, float]], None]


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: bad data or a too-high learning rate."""


@dataclass(frozen=True)
class TrainOutputs:
    """Where a training run publishes its results (all at once, at the end)."""

    model: Path
    log_csv: Path
    speed_json: Path
    checkpoint_dir: Path


def run_key(model_cfg: ModelConfig, train_cfg: TrainConfig, data_md5: str, world: int) -> str:
    """Identity of a training run: a checkpoint resumes only the run with the same key."""
    blob = json.dumps(
        [model_cfg.model_dump(), train_cfg.model_dump(), data_md5, world], sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    """Fused kernels (CPU and CUDA): one pass over the weights instead of a loop per tensor.
    On the 2-core CPU an Adam step over FCRN's 63.6M weights took 0.19 s for-loop vs 0.04 s
    fused, against ~0.8 s for a bf16 forward + backward; the update rule is the same."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True
        )
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> Any:
    """Stepped once per epoch; plateau watches the validation rel."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
    )


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    # Serialise to memory first: torch.save into a file reports a full disk as an opaque
    # RuntimeError, a plain write as the OSError that names the file. Writing the buffer's view
    # skips a copy of the ~0.7 GB state (Adam's moments are twice the model).
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(buffer.getbuffer())


def _clear_stale_files(outputs: TrainOutputs, keep: Path) -> None:
    """Remove what no run can use: checkpoints of other params or data, and the temporaries a
    killed run left (of checkpoints and of the outputs)."""
    remove_stale_temps(outputs.model, outputs.log_csv, outputs.speed_json)
    for stale in [
        *outputs.checkpoint_dir.glob("train-*.pt"),
        *outputs.checkpoint_dir.glob(".train-*.tmp"),
    ]:
        if stale != keep:
            stale.unlink()


def _validate(
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


def _check_ranks_agree(model: nn.Module, rt: Runtime) -> None:
    """DDP keeps replicas equal only if every rank did the same steps: verify before saving."""
    if rt.world_size == 1:
        return
    sums = torch.stack([t.detach().double().sum() for t in model.state_dict().values()])
    gathered = [torch.empty_like(sums) for _ in range(rt.world_size)]
    dist.all_gather(gathered, sums)
    if any(not torch.equal(g, sums) for g in gathered):
        raise RuntimeError("DDP ranks ended with different weights: a bug, please report it")
    if rt.is_main:
        print(f"DDP: all {rt.world_size} ranks hold identical weights")


def _write_outputs(
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
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        with writing(log):
            log.write_text(buffer.getvalue())
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


@dataclass(frozen=True)
class TrainData:
    """Where the epochs' batches and the validation batches come from."""

    train: DataLoader | DeviceSplit
    dataset: DepthDataset  # its epoch picks the augmentation draws (both paths)
    sampler: DistributedSampler
    val: DataLoader | None
    resize_hw: tuple[int, int]  # the stored frames (the model file records both sizes)
    crop_hw: tuple[int, int]  # the network input

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)


def build_data(cfg: TrainConfig, train_h5: Path, rt: Runtime) -> TrainData:
    """Train and validation batches; augmentation in loader workers or on the device."""
    with h5py.File(train_h5, "r") as f:
        num_images = len(f["index"])
        resize_hw = (int(f.attrs["resize_hw"][0]), int(f.attrs["resize_hw"][1]))
        crop_hw = (int(f.attrs["crop_hw"][0]), int(f.attrs["crop_hw"][1]))
    train_rows, val_rows = split_rows(num_images, cfg.val_fraction, cfg.seed)
    if len(train_rows) // (cfg.batch_size * rt.world_size) == 0:
        raise ValueError(
            f"{train_h5}: {len(train_rows)} training images are fewer than one batch of "
            f"train.batch_size={cfg.batch_size} x {rt.world_size} process(es); lower the batch size"
        )
    train_ds = DepthDataset(train_h5, train_rows, crop_hw, cfg.augment, cfg.seed)
    # DistributedSampler derives each epoch's order from (seed, epoch) alone, which is what makes
    # a resumed run identical; with one process it is simply a seeded shuffle.
    sampler = DistributedSampler(
        train_ds, num_replicas=rt.world_size, rank=rt.rank, shuffle=True, seed=cfg.seed
    )
    needed = DeviceSplit.nbytes(train_ds)
    source: DataLoader | DeviceSplit
    if resolve_data_on(cfg.data_on, rt.device, needed, cfg.device_memory_fraction) == "device":
        source = DeviceSplit(train_ds, rt.device, sampler, cfg.batch_size)
    else:
        source = make_loader(
            train_ds, cfg.batch_size, False, cfg.workers, cfg.seed, drop_last=True, sampler=sampler
        )
    if rt.is_main:
        where = "on the device" if isinstance(source, DeviceSplit) else "in the data loader"
        print(f"augmenting {len(train_rows)} training images {where} ({needed / 2**30:.2f} GiB)")
    val_loader = None
    if len(val_rows):
        val_ds = DepthDataset(train_h5, val_rows, crop_hw, None, cfg.seed)
        val_loader = make_loader(val_ds, cfg.batch_size, False, cfg.workers, cfg.seed, False)
    return TrainData(source, train_ds, sampler, val_loader, resize_hw, crop_hw)


def model_on_device(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    train_h5: Path,
    data: TrainData,
    rt: Runtime,
    weights_dir: Path = Path("data/downloads"),
) -> tuple[nn.Module, dict[str, Any]]:
    """The network to train on its device, and the constructor arguments saved with it."""
    # Start the last conv's bias at the mean depth so the final ReLU does not start dead
    # (imported official weights bring their own: no pass over the training depth for them).
    imported = model_cfg.arch == "official" and model_cfg.init == "official"
    out_bias = 0.0 if imported else round(mean_depth(train_h5, data.dataset.rows), 6)
    built = build_model(model_cfg, out_bias, weights_dir)
    model = built.model
    if rt.world_size > 1 and cfg.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(rt.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, built.config


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "rows", "timing", "epoch")


def _read_checkpoint(ckpt: Path, rt: Runtime) -> dict[str, Any] | None:
    """The checkpoint's state, or None when it is missing or unreadable.

    A truncated or garbled file (a full disk, a copy broken off) holds nothing to resume: it is
    deleted with a one-line warning and the run starts over, as it would without it.
    """
    if not ckpt.is_file():
        return None
    try:
        with warnings.catch_warnings():  # garbage may look like an unusual pickle protocol
            warnings.simplefilter("ignore")
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not set(CHECKPOINT_KEYS) <= state.keys():
            raise ValueError("not a training checkpoint")
    except OSError:  # the file system's trouble (permissions, I/O), not the file's: report it
        raise
    except Exception as e:  # decoding damaged bytes fails in many ways (zip, unpickler, EOF)
        if rt.is_main:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(
                f"warning: {ckpt}: unreadable checkpoint ({reason}); deleted, training starts "
                "over from epoch 1",
                file=sys.stderr,
            )
            ckpt.unlink(missing_ok=True)
        return None
    return state


def _resume(
    ckpt: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, rt: Runtime
) -> tuple[list[dict[str, float]], list[dict[str, float]], int]:
    """Restore the state after the last finished epoch: (log rows, timing, epochs done)."""
    state = _read_checkpoint(ckpt, rt)
    if state is None:
        return [], [], 0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    if rt.is_main:
        print(f"resuming from {ckpt} after epoch {state['epoch']}")
    return state["rows"], state["timing"], state["epoch"]


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


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    train_h5: Path,
    outputs: TrainOutputs,
    rt: Runtime,
    on_epoch: EpochHook | None = None,
    weights_dir: Path = Path("data/downloads"),
) -> dict[str, float]:
    """Train, checkpointing every epoch; return the last epoch's log row.

    `on_epoch` receives each epoch's log row on rank 0 (live experiment tracking);
    ``weights_dir`` keeps downloaded initial weights (`pipeline.model.build`).
    """
    data = build_data(cfg, train_h5, rt)
    model, model_config = model_on_device(model_cfg, cfg, train_h5, data, rt, weights_dir)
    opt = make_optimizer(cfg, model.parameters())
    sched = _scheduler(cfg, opt)
    key = run_key(model_cfg, cfg, md5sum(train_h5), rt.world_size)
    ckpt = outputs.checkpoint_dir / f"train-{key}.pt"
    rows, timing, start_epoch = _resume(ckpt, model, opt, sched, rt)
    if rt.is_main:
        _clear_stale_files(outputs, keep=ckpt)
    net: nn.Module = DistributedDataParallel(model) if rt.world_size > 1 else model
    if cfg.compile:
        net = torch.compile(net)
    loss_fn = get_loss(cfg.loss)
    if cfg.epochs == 0:  # publish model.init's weights as they are, with their validation
        rows = [{"epoch": 0, **_validate(model, data.val, rt, data.crop_hw)}]
        timing = [{"seconds": 0.0, "images_per_s": 0.0}]

    for epoch in range(start_epoch, cfg.epochs):
        data.set_epoch(epoch)
        lr = opt.param_groups[0]["lr"]
        stats = train_epoch(
            net, opt, loss_fn, data, epoch, cfg, rt, f"{train_h5}: epoch {epoch + 1}",
            time_first_step=epoch == start_epoch,
        )  # fmt: skip
        val = _validate(model, data.val, rt, data.crop_hw)
        if cfg.schedule == "plateau":
            sched.step(val["val_rel"])
        else:
            sched.step()
        row = {"epoch": epoch + 1, "train_loss": stats.loss, "lr": lr, **val}
        rows.append(row)
        timing.append({"seconds": stats.seconds, "images_per_s": stats.images_per_s})
        if stats.first_step_s is not None:
            timing[-1]["first_step_seconds"] = stats.first_step_s
        if rt.is_main:
            summary = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
            tqdm.write(f"epoch {epoch + 1}: {summary}, {stats.images_per_s:.1f} img/s")
            _save_checkpoint(
                ckpt,
                {
                    "key": key,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": _rng_state(),
                    "rows": rows,
                    "timing": timing,
                },
            )
            if on_epoch is not None:
                on_epoch(row)
        barrier()
    _check_ranks_agree(model, rt)
    if rt.is_main:
        # SyncBatchNorm keeps BatchNorm2d's state_dict keys: the file loads into a plain FCRN.
        sizes = (data.resize_hw, data.crop_hw)
        _write_outputs(outputs, model, model_config, sizes, rows, timing, rt, cfg.compile)
        ckpt.unlink(missing_ok=True)
    barrier()
    return rows[-1] if rows else {}
