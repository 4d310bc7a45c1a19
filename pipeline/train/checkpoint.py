"""Epoch checkpoints: written atomically after every epoch, read back to resume a killed run.

A checkpoint is named after its training's key (`pipeline.identity.TrainingIdentity`), so a run
with other params or data never resumes from a checkpoint that is not its own; a damaged one is
deleted with a warning and the run starts over.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.io import atomic_path, remove_stale_temps
from pipeline.runtime import Runtime
from pipeline.train.outputs import TrainOutputs

# What a checkpoint holds; `read_checkpoint` refuses a file without all of them.
CHECKPOINT_KEYS = ("key", "epoch", "model", "optimizer", "scheduler", "rng", "rows", "timing")


def checkpoint_path(outputs: TrainOutputs, key: str) -> Path:
    """The checkpoint of the run with identity ``key``."""
    return outputs.checkpoint_dir / f"train-{key}.pt"


def checkpoint_state(
    key: str,
    epoch: int,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    rows: list[dict[str, float]],
    timing: list[dict[str, float]],
) -> dict[str, Any]:
    """Everything a resumed run needs to continue after ``epoch`` as if never stopped."""
    values = (key, epoch, model.state_dict(), opt.state_dict(), sched.state_dict(), _rng_state())
    return dict(zip(CHECKPOINT_KEYS, (*values, rows, timing), strict=True))


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    # Serialise to memory first: torch.save into a file reports a full disk as an opaque
    # RuntimeError, a plain write as the OSError that names the file. Writing the buffer's view
    # skips a copy of the ~0.7 GB state (Adam's moments are twice the model).
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(buffer.getbuffer())


def clear_stale_files(outputs: TrainOutputs, keep: Path) -> None:
    """Remove what no run can use: checkpoints of other params or data, and the temporaries a
    killed run left (of checkpoints and of the outputs)."""
    remove_stale_temps(outputs.model, outputs.log_csv, outputs.speed_json)
    for stale in [
        *outputs.checkpoint_dir.glob("train-*.pt"),
        *outputs.checkpoint_dir.glob(".train-*.tmp"),
    ]:
        if stale != keep:
            stale.unlink()


def read_checkpoint(ckpt: Path, rt: Runtime) -> dict[str, Any] | None:
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


def resume(
    ckpt: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, rt: Runtime
) -> tuple[list[dict[str, float]], list[dict[str, float]], int]:
    """Restore the state after the last finished epoch: (log rows, timing, epochs done)."""
    state = read_checkpoint(ckpt, rt)
    if state is None:
        return [], [], 0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    if rt.is_main:
        print(f"resuming from {ckpt} after epoch {state['epoch']}")
    return state["rows"], state["timing"], state["epoch"]
