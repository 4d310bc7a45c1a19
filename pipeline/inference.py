"""One forward path for validation, evaluation and `fcrn-predict`: uint8 RGB in, metres out."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.model.fcrn import FCRN


def to_input(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [0, 1], the network's input."""
    rgb = torch.as_tensor(rgb)
    if rgb.dtype != torch.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB, got {tuple(rgb.shape)} {rgb.dtype}")
    return rgb.permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def predict_depth(
    model: FCRN, x: torch.Tensor, out_hw: tuple[int, int], autocast_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Depth (N, *out_hw) float32 metres for a (N, 3, H, W) [0, 1] batch on the model's device.

    The network's output (1/2 of the input size, roughly) is upsampled bilinearly, as the
    paper's evaluation does, so every caller compares at the ground truth's size.
    """
    model.eval()
    device = next(model.parameters()).device
    x = x.to(device, non_blocking=True)
    with torch.autocast(
        device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
    ):
        out = model(x)
    out = F.interpolate(out.float(), size=out_hw, mode="bilinear", align_corners=False)
    return out[:, 0]
