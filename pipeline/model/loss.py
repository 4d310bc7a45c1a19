"""Depth losses over valid pixels (ground truth > 0): berHu (the paper's); L1, L2 for ablations."""

from collections.abc import Callable

import torch


def _valid_residuals(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred - target where target > 0 else 0, number of such pixels); missing depth is 0.

    Masking with `where` instead of selecting the valid pixels keeps every shape fixed, so the
    loss never waits for the device to learn how many pixels are valid (a host sync per step).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    valid = target > 0
    return torch.where(valid, pred - target, 0.0), valid.sum()


def berhu(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reverse Huber: |x| if |x| <= c else (x^2 + c^2) / (2c), mean over valid pixels.

    c = 0.2 * max |x| over the valid pixels of the whole batch, detached: it is a threshold, not
    a path for gradients. When every residual is 0 then c = 0, every pixel is on the |x| branch
    and loss and gradient are 0 (the quadratic branch's 0/0 is kept out of autograd). Without a
    valid pixel the loss is NaN (0/0), as for `l1` and `l2`: training stops on it.
    """
    x, count = _valid_residuals(pred, target)
    ax = x.abs()  # invalid pixels are 0: on the |x| branch, adding 0
    c = 0.2 * ax.max().detach()
    quadratic = (x * x + c * c) / (2 * c.clamp_min(torch.finfo(x.dtype).tiny))
    return torch.where(ax <= c, ax, quadratic).sum() / count


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over valid pixels."""
    x, count = _valid_residuals(pred, target)
    return x.abs().sum() / count


def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valid pixels."""
    x, count = _valid_residuals(pred, target)
    return x.square().sum() / count


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: dict[str, LossFn] = {"berhu": berhu, "l1": l1, "l2": l2}


def get_loss(name: str) -> LossFn:
    """The loss named by `train.loss`."""
    if name not in LOSSES:
        raise ValueError(f"train.loss={name!r}: expected one of {sorted(LOSSES)}")
    return LOSSES[name]
