"""FCRN (Laina et al., 3DV 2016): ResNet-50 encoder, 1x1 bridge, four up-sampling blocks, 3x3 head.

228x304 RGB in, 128x160 depth (metres) out; ~63.56 M parameters with up-projection blocks. A
ResNet-18 encoder (each decoder width a quarter: ~13.7 M parameters, a 55 MB model file) is the
quick variant, as in later FCRN-style work: trials on a laptop and the project's end-to-end
tests, whose time goes into writing, hashing and uploading the model.
"""

from collections import OrderedDict
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.resnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMAGENET_URLS,
    Encoder,
    out_channels,
    resnet_encoder,
)
from pipeline.model.upsampling import UpConv, UpProj

_DECODERS: dict[str, type[nn.Module]] = {"upconv": UpConv, "upproj": UpProj}


class EncoderWeightsUnavailable(RuntimeError):
    """ImageNet weights are neither in the torch cache nor downloadable (e.g. offline)."""


def imagenet_weights_path(encoder: Encoder = "resnet50") -> Path:
    """Where torch.hub caches (and this module looks for) the encoder's ImageNet weights."""
    name = Path(urlparse(IMAGENET_URLS[encoder]).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _load_state_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for a bad file; all mean the same here
        raise ValueError(f"encoder weights file {path} is not a loadable state_dict: {e}") from e
    if not isinstance(state, dict):
        raise ValueError(f"encoder weights file {path} holds a {type(state).__name__}, not a dict")
    return state


def _imagenet_state(encoder: Encoder) -> dict[str, torch.Tensor]:
    path, url = imagenet_weights_path(encoder), IMAGENET_URLS[encoder]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # torchvision names its files <arch>-<sha256 prefix>.pth; torch.hub checks that prefix.
        hash_prefix = path.stem.rsplit("-", 1)[-1]
        try:
            torch.hub.download_url_to_file(url, str(path), hash_prefix, progress=False)
        except (OSError, RuntimeError) as e:
            raise EncoderWeightsUnavailable(
                f"ImageNet {encoder} weights are not cached and could not be downloaded from "
                f"{url} ({e}). Download that file elsewhere and place it at {path} "
                f"(torch.hub.get_dir()/checkpoints; TORCH_HOME moves it)."
            ) from e
    return _load_state_file(path)


def _encoder_state(spec: str, encoder: Encoder) -> tuple[dict[str, torch.Tensor] | None, str]:
    """Resolve `encoder_weights` to (state_dict or None, description for error messages)."""
    if spec == "none":
        return None, spec
    if spec == "imagenet":
        return _imagenet_state(encoder), str(imagenet_weights_path(encoder))
    path = Path(spec)
    if not path.is_file():
        raise ValueError(
            f"encoder_weights={spec!r}: expected 'none', 'imagenet' or the path of a state_dict "
            f"file, and there is no file at {path.resolve()}"
        )
    return _load_state_file(path), str(path)


def build_encoder(weights: str = "none", encoder: Encoder = "resnet50") -> nn.Sequential:
    """The ResNet up to layer4 (no pool, no fc), parameter names as in torchvision.

    `weights`: "none", "imagenet" (torchvision's IMAGENET1K_V1 weights of that ResNet) or the path
    of a state_dict of that ResNet (loaded with weights_only=True; `fc.*` entries are ignored).
    """
    state, source = _encoder_state(weights, encoder)
    net = nn.Sequential(OrderedDict(resnet_encoder(encoder)))
    if state is not None:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{source} is not a {encoder} state_dict: {e}") from e
    return net


class FCRN(nn.Module):
    """Fully convolutional residual network for monocular depth.

    Args:
        decoder: "upproj" (up-projection, the paper's best) or "upconv" (up-convolution).
        fast: use the four-sub-kernel form of unpool + 5x5 conv (same parameters and outputs as
            the naive form, ~4x fewer decoder multiply-adds).
        encoder_weights: "none", "imagenet" or the path of a state_dict of the encoder.
        final_relu: end with a ReLU as the official graph does (depths are non-negative).
        out_bias: initial bias of the last conv, e.g. the training-set mean depth, so that the
            final ReLU does not start dead.
        encoder: "resnet50" (the paper's) or "resnet18"; the bridge halves the encoder's
            channels (2048 or 512) and each decoder block halves them again.
    """

    def __init__(
        self,
        decoder: Literal["upconv", "upproj"] = "upproj",
        fast: bool = True,
        encoder_weights: str = "none",
        final_relu: bool = True,
        out_bias: float = 0.0,
        encoder: Encoder = "resnet50",
    ) -> None:
        super().__init__()
        if decoder not in _DECODERS:
            raise ValueError(f"decoder={decoder!r}: expected one of {sorted(_DECODERS)}")
        block = _DECODERS[decoder]
        # The ImageNet normalisation belongs to the encoder's weights; keep it inside the model
        # (not saved in state_dict: it is a property of the code, not of training).
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.encoder = build_encoder(encoder_weights, encoder)
        c = out_channels(encoder) // 2
        self.bridge = nn.Sequential(nn.Conv2d(2 * c, c, 1), nn.BatchNorm2d(c))
        self.decoder = nn.Sequential(*(block(c >> i, c >> (i + 1), fast) for i in range(4)))
        self.head = nn.Conv2d(c >> 4, 1, 3, padding=1)
        nn.init.constant_(self.head.bias, out_bias)
        self.final_relu = final_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W float RGB in [0, 1] -> N x 1 x H' x W' depth in metres.

        H' = 16 * (encoder stride-32 height), e.g. 228x304 -> 128x160.
        """
        x = self.decoder(self.bridge(self.encoder((x - self.mean) / self.std)))
        x = self.head(x)
        return F.relu(x) if self.final_relu else x


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
