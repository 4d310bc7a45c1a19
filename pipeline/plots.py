"""The evaluate stage's figures: example predictions and the training curves.

Figures are drawn on `matplotlib.figure.Figure` (Agg, no pyplot: no global backend or figure
state) under matplotlib's default style (a user's matplotlibrc cannot change them) and saved
without the "Software" tag (its version string would change the bytes after an upgrade), so
the same inputs give byte-identical PNGs: DVC tracks these files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib.style
import numpy as np
from matplotlib.figure import Figure

from pipeline.evaluate import Example
from pipeline.metrics import depth_metrics
from pipeline.train_log import read_columns

DEPTH_CMAP, ERROR_CMAP = "viridis", "magma"
CURVES = (  # training-log column, panel title
    ("train_loss", "train loss"),
    ("val_rel", "validation rel"),
    ("val_rms", "validation rms (m)"),
    ("val_delta1", "validation δ1 (higher is better)"),
    ("lr", "learning rate"),
)


def _save(fig: Figure, dest: os.PathLike[str] | str) -> None:
    # format given explicitly: `dest` may be a temporary name without a .png suffix.
    fig.savefig(dest, format="png", dpi=100, metadata={"Software": None})


def plot_predictions(examples: Sequence[Example], dest: os.PathLike[str] | str) -> None:
    """One row per example: RGB | ground truth | prediction | absolute error.

    Ground truth and prediction share one colour scale per row (so colours compare directly);
    the error has its own. Missing ground truth is left blank in both.
    """
    if not examples:
        raise ValueError("no examples to plot")
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(13, 2.5 * len(examples)), layout="constrained")
        axes = fig.subplots(len(examples), 4, squeeze=False)
        for row, ex in zip(axes, examples, strict=True):
            valid = ex.gt > 0
            gt = np.where(valid, ex.gt, np.nan)
            error = np.where(valid, np.abs(ex.pred - ex.gt), np.nan)
            lo = float(min(ex.gt[valid].min(initial=np.inf), ex.pred.min()))
            hi = float(max(ex.gt[valid].max(initial=-np.inf), ex.pred.max()))
            rel = depth_metrics(ex.pred, ex.gt)["rel"] if valid.any() else math.nan
            row[0].imshow(ex.rgb)
            row[0].set_title(f"image {ex.index}")
            row[1].imshow(gt, cmap=DEPTH_CMAP, vmin=lo, vmax=hi)
            row[1].set_title("ground truth")
            shown = row[2].imshow(ex.pred, cmap=DEPTH_CMAP, vmin=lo, vmax=hi)
            row[2].set_title(f"prediction (rel {rel:.3f})")
            fig.colorbar(shown, ax=row[1:3], label="depth (m)", shrink=0.9)
            err = row[3].imshow(error, cmap=ERROR_CMAP, vmin=0.0)
            row[3].set_title("absolute error")
            fig.colorbar(err, ax=row[3], label="error (m)", shrink=0.9)
            for ax in row:
                ax.set_axis_off()
        fig.suptitle(
            "Test images in the crop protocol's window (image N: 0-based index in the NYU labeled "
            "set; blank: no ground truth)"
        )
        _save(fig, dest)


def read_train_log(path: os.PathLike[str] | str) -> dict[str, np.ndarray]:
    """The plotted columns of the training log (``epoch`` and `CURVES`) as float arrays; empty
    cells (no validation split) are NaN."""
    return read_columns(path, ("epoch", *(c for c, _ in CURVES)))


def plot_train_curves(train_log: dict[str, np.ndarray], dest: os.PathLike[str] | str) -> None:
    """Train loss, validation rel / rms / delta1 and the learning rate per epoch."""
    epochs = train_log["epoch"]
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(18, 3.4), layout="constrained")
        for ax, (column, title) in zip(fig.subplots(1, len(CURVES)), CURVES, strict=True):
            values = train_log[column]
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            if np.isnan(values).all():
                ax.text(
                    0.5,
                    0.5,
                    "no validation split",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                )
                continue
            ax.plot(epochs, values, marker="o", markersize=3)
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
        _save(fig, dest)
