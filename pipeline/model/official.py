"""The authors' FCRN graph (ResNet-UpProj, their TensorFlow release), layer for layer, in PyTorch.

`OfficialFCRN` reproduces the published graph exactly so that their trained weights give their
outputs; the torchvision-based `FCRN` is the one to train from ImageNet. What differs, and why
each choice is kept as the TF code has it (docs/design.md lists them with sources):

- Caffe-style ResNet-50: a block's stride sits on its 1x1 ``branch2a`` (and ``branch1``), not
  on the 3x3; convolutions of the residual blocks have no bias, ``conv1`` has one.
- TF ``conv`` pads ``(k - 1) // 2`` on every side and convolves VALID (= PyTorch's symmetric
  padding for the odd kernels it is used with); ``pool1`` is TF ``SAME``: the padding is
  split with the odd pixel *after*, so an even input is padded 0 before and 1 after, not 1/1.
- BatchNorm epsilon 1e-4. The bridge ``layer1`` (1x1, with bias) + ``layer1_BN``, no ReLU.
- Up-projection: four convolutions of the input (A 3x3, B 2x3, C 3x2, D 2x2, all with bias),
  padded as `SUBPIXEL_PADDING` says (the 2-wide kernels padded *before*: a half-pixel shift
  against "unpool + 5x5 conv", which `pipeline.model.upsampling` implements exactly), then
  interleaved as Y[2i, 2j] = A, Y[2i+1, 2j] = B, Y[2i, 2j+1] = C, Y[2i+1, 2j+1] = D.
- Head ``ConvPred`` 3x3 -> 1 with bias and ReLU. The graph takes RGB in 0-255 without mean
  subtraction; this module takes [0, 1] like every model here and scales inside.

Module names are the TF layer names, so the weight import is a rename plus a transpose.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.upsampling import interleave

BN_EPS = 1e-4  # network.py's batch_normalization
INPUT_SCALE = 255.0  # the graph's input is float RGB 0-255
# ResNet-50 stages: (stage, block letters, bottleneck width, output channels).
RESNET_STAGES = (
    (2, "abc", 64, 256),
    (3, "abcd", 128, 512),
    (4, "abcdef", 256, 1024),
    (5, "abc", 512, 2048),
)
UP_PROJECTIONS = (("2x", 1024, 512), ("4x", 512, 256), ("8x", 256, 128), ("16x", 128, 64))
# Sub-pixel convolution -> (kernel h, kernel w) and F.pad order (left, right, top, bottom),
# from network.py's tf.pad calls ([[top, bottom], [left, right]] there).
SUBPIXEL_KERNELS = {"A": (3, 3), "B": (2, 3), "C": (3, 2), "D": (2, 2)}
SUBPIXEL_PADDING = {"A": (1, 1, 1, 1), "B": (1, 1, 1, 0), "C": (1, 0, 1, 1), "D": (1, 0, 1, 0)}


def tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF's ``SAME``: output ceil(size / stride), odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_same_max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """``tf.nn.max_pool(..., padding='SAME')``: padded cells never win (-inf)."""
    top, bottom = tf_same_pad(x.shape[-2], kernel, stride)
    left, right = tf_same_pad(x.shape[-1], kernel, stride)
    x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)


def _conv(
    in_ch: int,
    out_ch: int,
    k: tuple[int, int] | int,
    stride: int = 1,
    bias: bool = False,
    padding: int | None = None,
) -> nn.Conv2d:
    """A TF ``conv``: SAME pads (k - 1) // 2 on both sides; None = that, 0 = VALID."""
    kh, kw = (k, k) if isinstance(k, int) else k
    pad = ((kh - 1) // 2, (kw - 1) // 2) if padding is None else (padding, padding)
    return nn.Conv2d(in_ch, out_ch, (kh, kw), stride, pad, bias=bias)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS)


class OfficialFCRN(nn.Module):
    """The official ResNet-UpProj graph. N x 3 x H x W RGB in [0, 1] -> N x 1 x H' x W' metres
    (228x304 -> 128x160, the size it was trained at).

    Args:
        out_bias: initial bias of ``ConvPred`` (training from scratch: the mean depth, so the
            final ReLU does not start dead); imported weights overwrite it.
    """

    def __init__(self, out_bias: float = 0.0) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {
            "conv1": _conv(3, 64, 7, stride=2, bias=True),
            "bn_conv1": _bn(64),
        }
        in_ch = 64
        for stage, letters, mid, out in RESNET_STAGES:
            for letter in letters:
                name = f"{stage}{letter}"
                stride = 2 if letter == "a" and stage > 2 else 1
                if letter == "a":
                    layers[f"res{name}_branch1"] = _conv(in_ch, out, 1, stride)
                    layers[f"bn{name}_branch1"] = _bn(out)
                for branch, (c_in, c_out, k, s) in {
                    "2a": (in_ch, mid, 1, stride),  # Caffe ResNet: the stride on the 1x1
                    "2b": (mid, mid, 3, 1),
                    "2c": (mid, out, 1, 1),
                }.items():
                    layers[f"res{name}_branch{branch}"] = _conv(c_in, c_out, k, s)
                    layers[f"bn{name}_branch{branch}"] = _bn(c_out)
                in_ch = out
        layers["layer1"] = _conv(2048, 1024, 1, bias=True)
        layers["layer1_BN"] = _bn(1024)
        for up_id, c_in, c_out in UP_PROJECTIONS:
            for branch in ("br1", "br2"):
                for part, k in SUBPIXEL_KERNELS.items():
                    layers[f"layer{up_id}_{branch}_Conv{part}"] = _conv(
                        c_in, c_out, k, bias=True, padding=0
                    )
                layers[f"layer{up_id}_{branch}_BN"] = _bn(c_out)
            layers[f"layer{up_id}_Conv"] = _conv(c_out, c_out, 3, bias=True)
            layers[f"layer{up_id}_BN"] = _bn(c_out)
        layers["ConvPred"] = _conv(64, 1, 3, bias=True)
        self.layers = nn.ModuleDict(layers)
        nn.init.constant_(self.layers["ConvPred"].bias, out_bias)

    def _cbn(self, name: str, bn: str, x: torch.Tensor, relu: bool) -> torch.Tensor:
        x = self.layers[bn](self.layers[name](x))
        return F.relu(x) if relu else x

    def _unpool_as_conv(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        """``unpool_as_conv``: BN(interleave(A, B, C, D)) of the padded input."""
        a, b, c, d = (
            self.layers[f"{prefix}_Conv{part}"](F.pad(x, SUBPIXEL_PADDING[part]))
            for part in SUBPIXEL_KERNELS
        )
        # interleave(y00, y01, y10, y11) puts y_rc at (2i + r, 2j + c): B is (1, 0), C (0, 1).
        return self.layers[f"{prefix}_BN"](interleave(a, c, b, d))

    def _up_project(self, up_id: str, x: torch.Tensor) -> torch.Tensor:
        branch1 = F.relu(self._unpool_as_conv(f"layer{up_id}_br1", x))
        branch1 = self._cbn(f"layer{up_id}_Conv", f"layer{up_id}_BN", branch1, relu=False)
        return F.relu(branch1 + self._unpool_as_conv(f"layer{up_id}_br2", x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W float RGB in [0, 1] -> N x 1 x H' x W' depth in metres."""
        x = self._cbn("conv1", "bn_conv1", x * INPUT_SCALE, relu=True)
        x = tf_same_max_pool(x, 3, 2)
        for stage, letters, _, _ in RESNET_STAGES:
            for letter in letters:
                name = f"{stage}{letter}"
                if letter == "a":
                    shortcut = self._cbn(f"res{name}_branch1", f"bn{name}_branch1", x, False)
                else:
                    shortcut = x
                y = self._cbn(f"res{name}_branch2a", f"bn{name}_branch2a", x, relu=True)
                y = self._cbn(f"res{name}_branch2b", f"bn{name}_branch2b", y, relu=True)
                y = self._cbn(f"res{name}_branch2c", f"bn{name}_branch2c", y, relu=False)
                x = F.relu(shortcut + y)
        x = self._cbn("layer1", "layer1_BN", x, relu=False)
        for up_id, _, _ in UP_PROJECTIONS:
            x = self._up_project(up_id, x)
        return F.relu(self.layers["ConvPred"](x))  # dropout (keep_prob 1) is the identity
