"""The model file (`models/fcrn.pt`): weights, the resolved constructor arguments, input sizes.

Like nanoGPT's checkpoints, the file rebuilds its own network: `load_model` needs no params.yaml,
so `fcrn-predict` and evaluation work on any copy of the file. It holds nothing machine- or
time-dependent (no paths, dates or device names), so the same training gives the same bytes.

Format 2 (written now): ``{"format": 2, "config": {"arch": ..., **kwargs}, "input_hw": [h, w],
"crop_hw": [h, w], "state_dict"}``; ``input_hw`` is the frame size inputs are resized to (the
training frames, `data.preprocess.resize_hw`), ``crop_hw`` the crops the network trained on.
Format 1 (read still): no ``arch`` (torchvision) and no sizes.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.io import atomic_path
from pipeline.model.fcrn import FCRN
from pipeline.model.official import OfficialFCRN

FORMAT_VERSION = 2
MODEL_FILE_NAME = "fcrn.pt"  # its name in a registered version's extra_files/ (fcrn-predict)
READABLE_FORMATS = (1, 2)
ARCHS: dict[str, type[nn.Module]] = {"torchvision": FCRN, "official": OfficialFCRN}


@dataclass(frozen=True)
class ModelFile:
    """A loaded model file: the network (eval mode) and the sizes it records (None: format 1)."""

    model: nn.Module
    input_hw: tuple[int, int] | None
    crop_hw: tuple[int, int] | None


def save_model(
    model: nn.Module,
    config: dict[str, Any],
    dest: str | os.PathLike[str],
    input_hw: tuple[int, int] | None = None,
    crop_hw: tuple[int, int] | None = None,
) -> None:
    """Write :func:`model_bytes` to ``dest`` atomically."""
    data = model_bytes(model, config, input_hw, crop_hw)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def model_bytes(
    model: nn.Module,
    config: dict[str, Any],
    input_hw: tuple[int, int] | None = None,
    crop_hw: tuple[int, int] | None = None,
) -> bytes:
    """The model file's bytes; ``config`` = the constructor's kwargs plus ``arch`` (default
    torchvision); sizes not given are stored as None (callers then fall back as for format 1).

    ``encoder_weights`` is stored as "none": the weights are in the file, so rebuilding must not
    fetch ImageNet weights again.
    """
    config = {"arch": "torchvision", **config}
    if config["arch"] == "torchvision":
        config["encoder_weights"] = "none"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT_VERSION,
        "config": config,
        "input_hw": _hw(input_hw),
        "crop_hw": _hw(crop_hw),
        "state_dict": state,
    }
    # Serialise to memory: torch.save names the zip records after the file, and the temp file's
    # random name would otherwise make every save's bytes differ.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _hw(value: Any) -> list[int] | None:
    return None if value is None else [int(value[0]), int(value[1])]


def read_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> ModelFile:
    """Rebuild the network from a file written by `save_model` (format 1 or 2), in eval mode on
    ``device``, with the sizes it records."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model file (run `dvc repro train` to make one)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for a bad file; all mean the same here
        raise ValueError(f"{path}: not a loadable model file ({e})") from e
    version = payload.get("format") if isinstance(payload, dict) else None
    if version not in READABLE_FORMATS:
        raise ValueError(
            f"{path}: not an FCRN model file of a format this code reads (format {version!r}, "
            f"readable: {', '.join(map(str, READABLE_FORMATS))}): re-create it with "
            "`dvc repro train` (or `fcrn-import-official` for the authors' weights)"
        )
    config = dict(payload["config"])
    arch = config.pop("arch", "torchvision")
    if arch not in ARCHS:
        raise ValueError(f"{path}: unknown model arch {arch!r} (known: {', '.join(ARCHS)})")
    model = ARCHS[arch](**config)
    model.load_state_dict(payload["state_dict"])
    sizes = (_hw(payload.get(k)) for k in ("input_hw", "crop_hw"))
    return ModelFile(model.to(device).eval(), *(tuple(s) if s else None for s in sizes))


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """The network of a model file (see `read_model`), in eval mode on ``device``."""
    return read_model(path, device).model
