"""ResNet-50 (He et al. 2016, v1.5: the stride on the 3x3) and ResNet-18, laid out as
torchvision's `resnet50` / `resnet18`.

Why not import them: `import torchvision` loads all of its models, ops and transforms, which
roughly doubled `fcrn-predict`'s start-up (torch alone takes ~2 s on 2 cores), and a bare CUDA
machine with only torch cannot import it at all. This builder keeps torchvision's module names
(so state_dicts and model files load unchanged), its constructor's random draws in the same
order (so `torch.manual_seed` gives the same initial weights and a training the same model file
bytes) and its forward arithmetic. ``tests/test_resnet.py`` checks all three against torchvision.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Encoder = Literal["resnet50", "resnet18"]
# torchvision's ResNet*_Weights.IMAGENET1K_V1: where the weights live and how inputs were scaled.
IMAGENET_URLS: dict[str, str] = {
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WIDTHS_STRIDES = ((64, 1), (128, 2), (256, 2), (512, 2))  # each stage's width and stride
NUM_CLASSES = 1000  # only for the classifier's random draws (see `resnet_encoder`)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 with a residual, as torchvision's `Bottleneck` (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample  # registered last: it comes last in modules() order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class BasicBlock(nn.Module):
    """3x3 (stride) -> 3x3 with a residual, as torchvision's `BasicBlock` (ResNet-18)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


ARCHITECTURES: dict[str, tuple[type[Bottleneck | BasicBlock], tuple[int, ...]]] = {
    "resnet50": (Bottleneck, (3, 4, 6, 3)),  # (block, blocks per stage)
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
}


def out_channels(encoder: Encoder) -> int:
    """Channels of layer4's output: what the decoder's bridge takes (2048 or 512)."""
    block, _ = ARCHITECTURES[encoder]
    return WIDTHS_STRIDES[-1][0] * block.expansion


def _stage(
    block: type[Bottleneck | BasicBlock], in_ch: int, width: int, blocks: int, stride: int
) -> nn.Sequential:
    out_ch = width * block.expansion
    downsample = None
    if stride != 1 or in_ch != out_ch:  # built before the first block, as torchvision does
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
        )
    layers = [block(in_ch, width, stride, downsample)]
    layers += [block(out_ch, width, 1, None) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def resnet_encoder(encoder: Encoder = "resnet50") -> dict[str, nn.Module]:
    """conv1, bn1, relu, maxpool, layer1..layer4 of a randomly initialised ResNet.

    The classifier is built and dropped: its random draws come between the trunk's and the
    He-normal re-initialisation, and the modules built after this one (the decoder) must see
    the generator where torchvision leaves it.
    """
    block, depths = ARCHITECTURES[encoder]
    parts: dict[str, nn.Module] = {
        "conv1": nn.Conv2d(3, 64, 7, 2, padding=3, bias=False),
        "bn1": nn.BatchNorm2d(64),
        "relu": nn.ReLU(inplace=True),
        "maxpool": nn.MaxPool2d(3, 2, padding=1),
    }
    in_ch, stages = 64, zip(WIDTHS_STRIDES, depths, strict=True)
    for i, ((width, stride), blocks) in enumerate(stages, start=1):
        parts[f"layer{i}"] = _stage(block, in_ch, width, blocks, stride)
        in_ch = width * block.expansion
    nn.Linear(in_ch, NUM_CLASSES)  # the dropped classifier's draws (see above)
    for part in parts.values():
        for m in part.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
    return parts
