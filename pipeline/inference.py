"""One forward path for validation, evaluation and `fcrn-predict`: uint8 RGB in, metres out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.data.augment import to_input
from pipeline.model.fcrn import FCRN

__all__ = ["predict_depth", "to_input"]  # to_input: the input encoding, owned by the data


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
