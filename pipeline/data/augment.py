"""The paper's training augmentations as batched torch ops: one definition for every data path.

A DataLoader worker applies them to a batch of one image; the device path (`train.data_on:
device`) applies them to whole batches of a split held in accelerator memory. Each image's
parameters come from a generator seeded by (seed, epoch, image) and every op works per image, so
a sample is the same whichever path, batch or device made it (bit for bit on the CPU).

Scale, rotation, crop and flip are one inverse mapping from each output pixel to a point of the
stored frame, sampled bilinearly for RGB and by nearest neighbour for depth at the same point, so
RGB and depth stay aligned and no depth is invented between an edge and the wall behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # annotations only: inference (and the bare GPU check) need no pydantic
    from pipeline.config import AugmentConfig

MM_PER_M = 1000.0
NOT_FINITE_MM = 65535  # stands for NaN/inf: corrupt data must still fail the step's finite check
MAX_MM = NOT_FINITE_MM - 1
# Columns of one image's draws: scaled size, depth divisor, rotation, crop corner, flip, gains.
SCALED_H, SCALED_W, SCALE, COS, SIN, TOP, LEFT, FLIP, GAIN = range(9)
NUM_DRAWS = GAIN + 3


def encode_depth(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres, the form augmentation reads, on the host and the device.

    Two bytes a pixel like float16, but 0.5 mm steps up to 65.5 m where float16 steps 4 mm at
    10 m. 0 stays 0 (invalid); non-finite values become NOT_FINITE_MM, which decodes to NaN.
    """
    finite = np.isfinite(depth)
    mm = np.rint(np.clip(np.where(finite, depth, 0.0) * MM_PER_M, 0, MAX_MM)).astype(np.uint16)
    mm[~finite] = NOT_FINITE_MM
    return mm


def to_input(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [0, 1], the network's input."""
    rgb = torch.as_tensor(rgb)
    if rgb.dtype != torch.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB, got {tuple(rgb.shape)} {rgb.dtype}")
    return rgb.permute(0, 3, 1, 2).float().div_(255.0)


def draw(
    cfg: AugmentConfig,
    rng: np.random.Generator,
    stored_hw: tuple[int, int],
    crop_hw: tuple[int, int],
) -> np.ndarray:
    """One image's augmentation parameters (NUM_DRAWS floats), drawn in a fixed order."""
    h, w = stored_hw
    s = rng.uniform(*cfg.scale) if cfg.scale[1] > 1.0 else 1.0  # s times larger: s times nearer
    scaled_h, scaled_w = round(h * s), round(w * s)
    angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg) if cfg.rotation_deg > 0 else 0.0
    top = int(rng.integers(0, scaled_h - crop_hw[0] + 1))
    left = int(rng.integers(0, scaled_w - crop_hw[1] + 1))
    flip = bool(cfg.hflip and rng.random() < 0.5)
    gains = rng.uniform(1.0 - cfg.color, 1.0 + cfg.color, 3) if cfg.color > 0 else np.ones(3)
    rad = np.deg2rad(angle)
    head = [scaled_h, scaled_w, s, np.cos(rad), np.sin(rad), top, left, float(flip)]
    return np.array([*head, *gains])


def draws_for(
    cfg: AugmentConfig,
    seed: int,
    epoch: int,
    rows: Sequence[int] | np.ndarray,
    stored_hw: tuple[int, int],
    crop_hw: tuple[int, int],
) -> torch.Tensor:
    """(len(rows), NUM_DRAWS) float32 draws, each from the generator of (seed, epoch, row)."""
    draws = [
        draw(cfg, np.random.default_rng([seed, epoch, int(r)]), stored_hw, crop_hw) for r in rows
    ]
    return torch.from_numpy(np.stack(draws).astype(np.float32))


def _gather(
    flat: torch.Tensor, y: torch.Tensor, x: torch.Tensor, hw: tuple[int, int]
) -> torch.Tensor:
    """Pixels (y, x) (B, n long) of (B, H*W, C) images -> (B, n, C); 0 outside the frame."""
    h, w = hw
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    index = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1))[..., None].expand(-1, -1, flat.shape[-1])
    return torch.where(inside[..., None], flat.gather(1, index), 0)


def augment_batch(
    rgb: torch.Tensor, depth_mm: torch.Tensor, draws: torch.Tensor, crop_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment stored frames: (B, H, W, 3) uint8 RGB, (B, H, W) uint16 mm depth, (B, NUM_DRAWS)
    float32 draws, all on one device -> (B, 3, h, w) float32 RGB in [0, 1] (channels_last in
    memory) and (B, 1, h, w) float32 metres, 0 = invalid (missing, or rotated in from outside).
    """
    batch, stored_h, stored_w = depth_mm.shape
    h, w = crop_hw
    draws = draws.to(rgb.device)
    p = draws[:, :, None, None].unbind(1)  # each (B, 1, 1)
    # Output pixel centres; a flipped output column j shows crop column w - 1 - j.
    i = torch.arange(h, device=rgb.device, dtype=torch.float32)[:, None] + 0.5
    j = torch.arange(w, device=rgb.device, dtype=torch.float32)[None, :] + 0.5
    j = torch.where(p[FLIP] > 0, w - j, j)
    # Relative to the centre of the scaled image, then rotated back (the crop was cut from the
    # rotated image), then divided by the scale: continuous coordinates in the stored frame.
    y = i + p[TOP] - p[SCALED_H] / 2
    x = j + p[LEFT] - p[SCALED_W] / 2
    src_y = (p[SIN] * x + p[COS] * y + p[SCALED_H] / 2) * (stored_h / p[SCALED_H]) - 0.5
    src_x = (p[COS] * x - p[SIN] * y + p[SCALED_W] / 2) * (stored_w / p[SCALED_W]) - 0.5
    src_y, src_x = src_y.flatten(1), src_x.flatten(1)
    stored = (stored_h, stored_w)

    near_y, near_x = (src_y + 0.5).floor().long(), (src_x + 0.5).floor().long()
    mm = _gather(depth_mm.reshape(batch, -1, 1), near_y, near_x, stored)[..., 0].float()
    mm = torch.where(mm == NOT_FINITE_MM, torch.nan, mm)
    depth = (mm / MM_PER_M / p[SCALE].flatten(1)).view(batch, 1, h, w)

    y0, x0 = src_y.floor(), src_x.floor()
    wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]
    y0, x0 = y0.long(), x0.long()
    ys, xs = torch.cat([y0, y0, y0 + 1, y0 + 1], 1), torch.cat([x0, x0 + 1, x0, x0 + 1], 1)
    a, b, c, d = _gather(rgb.reshape(batch, -1, 3), ys, xs, stored).float().chunk(4, 1)
    top, bottom = a * (1 - wx) + b * wx, c * (1 - wx) + d * wx
    value = (top * (1 - wy) + bottom * wy) / 255.0 * draws[:, None, GAIN:]
    out = value.clamp_(0.0, 1.0).view(batch, h, w, 3).permute(0, 3, 1, 2)
    return out, depth
