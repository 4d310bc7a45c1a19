"""The model file (`models/fcrn.pt`): weights plus the resolved constructor arguments.

Like nanoGPT's checkpoints, the file rebuilds its own network: `load_model` needs no params.yaml,
so `fcrn-predict` and evaluation work on any copy of the file. It holds nothing machine- or
time-dependent (no paths, dates or device names), so the same training gives the same bytes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from pipeline.io import atomic_path
from pipeline.model.fcrn import FCRN

FORMAT_VERSION = 1


def save_model(model: FCRN, config: dict[str, Any], dest: str | os.PathLike[str]) -> None:
    """Write :func:`model_bytes` to ``dest`` atomically."""
    data = model_bytes(model, config)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def model_bytes(model: FCRN, config: dict[str, Any]) -> bytes:
    """The model file's bytes: ``{"format", "config", "state_dict"}``; ``config`` = FCRN's kwargs.

    ``encoder_weights`` is stored as "none": the weights are in the file, so rebuilding must not
    fetch ImageNet weights again.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT_VERSION,
        "config": {**config, "encoder_weights": "none"},
        "state_dict": state,
    }
    # Serialise to memory: torch.save names the zip records after the file, and the temp file's
    # random name would otherwise make every save's bytes differ.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> FCRN:
    """Rebuild the network from a file written by `save_model`, in eval mode on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model file (run `dvc repro train` to make one)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for a bad file; all mean the same here
        raise ValueError(f"{path}: not a loadable model file ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: not an FCRN model file of format {FORMAT_VERSION}")
    model = FCRN(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
