"""ResNet-50 (He et al. 2016, v1.5: the stride on the 3x3) laid out as torchvision's `resnet50`.

Why not import it: `import torchvision` loads all of its models, ops and transforms, which
roughly doubled `fcrn-predict`'s start-up (torch alone takes ~2 s on 2 cores), and a bare CUDA
machine with only torch cannot import it at all. This builder keeps torchvision's module names
(so state_dicts and model files load unchanged), its constructor's random draws in the same
order (so `torch.manual_seed` gives the same initial weights and a training the same model file
bytes) and its forward arithmetic. ``tests/test_resnet.py`` checks all three against torchvision.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision's ResNet50_Weights.IMAGENET1K_V1: where the weights live and how inputs were scaled.
IMAGENET_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (width, blocks, stride)
EXPANSION = 4
NUM_CLASSES = 1000  # only for the classifier's random draws (see `resnet50_encoder`)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 with a residual, as torchvision's `Bottleneck`."""

    def __init__(self, in_ch: int, width: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        out_ch = width * EXPANSION
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


def _stage(in_ch: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    out_ch = width * EXPANSION
    downsample = None
    if stride != 1 or in_ch != out_ch:  # built before the first block, as torchvision does
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
        )
    layers = [Bottleneck(in_ch, width, stride, downsample)]
    layers += [Bottleneck(out_ch, width, 1, None) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def resnet50_encoder() -> dict[str, nn.Module]:
    """conv1, bn1, relu, maxpool, layer1..layer4 of a randomly initialised ResNet-50.

    The classifier is built and dropped: its random draws come between the trunk's and the
    He-normal re-initialisation, and the modules built after this one (the decoder) must see
    the generator where torchvision leaves it.
    """
    parts: dict[str, nn.Module] = {
        "conv1": nn.Conv2d(3, 64, 7, 2, padding=3, bias=False),
        "bn1": nn.BatchNorm2d(64),
        "relu": nn.ReLU(inplace=True),
        "maxpool": nn.MaxPool2d(3, 2, padding=1),
    }
    in_ch = 64
    for i, (width, blocks, stride) in enumerate(STAGES, start=1):
        parts[f"layer{i}"] = _stage(in_ch, width, blocks, stride)
        in_ch = width * EXPANSION
    nn.Linear(in_ch, NUM_CLASSES)  # the dropped classifier's draws (see above)
    for part in parts.values():
        for m in part.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
    return parts
