"""The network a training starts from: `model.arch` built, `model.init` weights loaded.

`model.init: official` downloads the authors' checkpoint zip into ``weights_dir`` (resumable,
SHA-256-checked: `pipeline.download.fetch`; offline, the error names the URL, the checksum
and where to put a copy) and imports it (`pipeline.model.import_official`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch.distributed as dist
from torch import nn

from pipeline.config import ModelConfig
from pipeline.download import fetch
from pipeline.model.fcrn import FCRN
from pipeline.model.import_official import import_official
from pipeline.model.official import OfficialFCRN
from pipeline.runtime import barrier


@dataclass(frozen=True)
class BuiltModel:
    """The network and the constructor kwargs its model file records."""

    model: nn.Module
    config: dict[str, Any]


def official_weights_path(cfg: ModelConfig, weights_dir: Path) -> Path:
    """Where `init: official` keeps the downloaded zip (named as the URL names it)."""
    return weights_dir / Path(urlparse(cfg.official.url).path).name


def build_model(cfg: ModelConfig, out_bias: float, weights_dir: Path) -> BuiltModel:
    """The model to train; ``out_bias`` starts the last conv's bias (e.g. the mean depth)."""
    if cfg.arch == "torchvision":
        config = {"decoder": cfg.decoder, "fast": cfg.fast, "final_relu": cfg.final_relu}
        config["out_bias"] = out_bias
        if cfg.encoder != "resnet50":  # recorded only then: ResNet-50 files keep their bytes
            config["encoder"] = cfg.encoder
        return BuiltModel(FCRN(encoder_weights=cfg.encoder_weights, **config), config)
    if cfg.init == "none":
        config = {"arch": "official", "out_bias": out_bias}
        return BuiltModel(OfficialFCRN(out_bias=out_bias), config)
    src = cfg.official
    dest = official_weights_path(cfg, weights_dir)
    # Under DDP rank 0 downloads and verifies (one writer of the partial file); the others then
    # read the file it verified. If rank 0 fails, torchrun stops the rest.
    first = not dist.is_initialized() or dist.get_rank() == 0
    if first:
        fetch(src.url, dest, src.sha256, retries=src.retries, backoff=src.backoff_s)
    barrier()
    return BuiltModel(import_official(dest), {"arch": "official"})


def weights_provenance(cfg: ModelConfig) -> dict[str, str]:
    """Tags for the training's MLflow run: where its initial weights came from."""
    if cfg.init == "official":
        return {"weights.init": "official", "weights.source": cfg.official.url,
                "weights.sha256": cfg.official.sha256}  # fmt: skip
    return {"weights.init": cfg.init, "weights.encoder": cfg.encoder_weights}
