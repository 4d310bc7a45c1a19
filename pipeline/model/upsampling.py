"""FCRN up-sampling blocks (Laina et al. 2016, Fig. 2): up-convolution and up-projection.

Both are built on "2x zero-unpooling followed by a 5x5 convolution" (`UnpoolConv`), which has two
exact implementations sharing the same parameters:

- naive: unpool (value at the top-left of each 2x2 cell, zeros elsewhere), then a 5x5 conv with
  padding 2;
- fast: the 5x5 conv meets non-zero inputs only through the sub-grids k[0::2, 0::2] (3x3),
  k[0::2, 1::2] (3x2), k[1::2, 0::2] (2x3) and k[1::2, 1::2] (2x2). Convolving the input itself
  with them and interleaving the four outputs gives the same map at ~1/4 of the multiply-adds.

The four sub-kernels are the stored parameters: the fast path uses them as they are (slicing a
5x5 parameter on every step was measured at ~18% of a training step) and the naive path
assembles its 5x5 kernel from them, so state_dicts are interchangeable.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

# Sub-kernel name -> (a, b): it is k[a::2, b::2] of the 5x5 kernel and produces the output
# pixels (2i + a, 2j + b).
_SUBGRIDS = {"k33": (0, 0), "k32": (0, 1), "k23": (1, 0), "k22": (1, 1)}


def _empty(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Uninitialised tensor like x, in x's memory format (keeps channels_last end to end)."""
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if cl else torch.contiguous_format
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)


def unpool(x: torch.Tensor) -> torch.Tensor:
    """2x zero-unpooling: x[i, j] goes to (2i, 2j); the other three cells of each 2x2 are zero."""
    n, c, h, w = x.shape
    out = _empty(x, (n, c, 2 * h, 2 * w)).zero_()
    out[:, :, 0::2, 0::2] = x
    return out


def interleave(
    y00: torch.Tensor, y01: torch.Tensor, y10: torch.Tensor, y11: torch.Tensor
) -> torch.Tensor:
    """Place y_ab[i, j] at output pixel (2i + a, 2j + b)."""
    n, c, h, w = y00.shape
    out = _empty(y00, (n, c, 2 * h, 2 * w))
    for y, (a, b) in zip((y00, y01, y10, y11), _SUBGRIDS.values(), strict=True):
        out[:, :, a::2, b::2] = y
    return out


class UnpoolConv(nn.Module):
    """2x zero-unpooling + 5x5 convolution (padding 2), stored as its four sub-kernels.

    Output pixel (2i + a, 2j + b) sees input rows i-1..i+1 when a = 0 (3 taps, centred) and rows
    i..i+1 when a = 1 (2 taps, padded after); columns likewise with b. Hence the 3-wide kernels
    are padded by one on both sides and the 2-wide ones by one at the bottom/right.
    """

    def __init__(self, in_ch: int, out_ch: int, fast: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.fast = fast
        # He-normal on the effective fan-in: on average 25/4 of the 25 taps meet non-zero inputs.
        std = math.sqrt(2.0 / (in_ch * 25 / 4))
        for name, (r, c) in _SUBGRIDS.items():
            shape = (out_ch, in_ch, 3 - r, 3 - c)
            self.register_parameter(name, nn.Parameter(torch.randn(shape) * std))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None

    def kernel5x5(self) -> torch.Tensor:
        """The equivalent 5x5 kernel, assembled from the sub-kernels (differentiable)."""
        out_ch, in_ch = self.k33.shape[:2]
        k = self.k33.new_zeros(out_ch, in_ch, 5, 5)
        for name, (r, c) in _SUBGRIDS.items():
            k[:, :, r::2, c::2] = getattr(self, name)
        return k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return F.conv2d(unpool(x), self.kernel5x5(), self.bias, padding=2)
        # F.pad order: (left, right, top, bottom).
        y00 = F.conv2d(x, self.k33, self.bias, padding=1)
        y01 = F.conv2d(F.pad(x, (0, 1, 1, 1)), self.k32, self.bias)
        y10 = F.conv2d(F.pad(x, (1, 1, 0, 1)), self.k23, self.bias)
        y11 = F.conv2d(F.pad(x, (0, 1, 0, 1)), self.k22, self.bias)
        return interleave(y00, y01, y10, y11)


class UpConv(nn.Module):
    """Up-convolution: unpool -> 5x5 conv (with bias) -> ReLU; doubles H and W."""

    def __init__(self, in_ch: int, out_ch: int, fast: bool = True) -> None:
        super().__init__()
        self.conv = UnpoolConv(in_ch, out_ch, fast, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class UpProj(nn.Module):
    """Up-projection: relu(bn(conv3(relu(bn(up5(x))))) + bn(up5'(x))); doubles H and W.

    Convolutions followed by BatchNorm carry no bias (BN's shift makes it redundant).
    """

    def __init__(self, in_ch: int, out_ch: int, fast: bool = True) -> None:
        super().__init__()
        self.conv1 = UnpoolConv(in_ch, out_ch, fast)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.proj = UnpoolConv(in_ch, out_ch, fast)
        self.bn_proj = nn.BatchNorm2d(out_ch)
        nn.init.kaiming_normal_(self.conv2.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(branch + self.bn_proj(self.proj(x)))
