"""reports/train_log.csv, the per-epoch training log: its columns, its writer and its readers.

One definition for the trainer that writes it, the training-curve plot and the MLflow catch-up
that read it. Torch-free, so reading a log never loads the training stack.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from pipeline.metrics import KEYS

COLUMNS = ("epoch", "train_loss", "lr", *(f"val_{k}" for k in KEYS))


def to_csv(rows: list[dict[str, float]]) -> str:
    """The log's text: a header of `COLUMNS`, one row an epoch (missing values stay empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_rows(path: os.PathLike[str] | str) -> list[dict[str, float]]:
    """The log as rows of floats (empty cells, e.g. no validation, dropped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def read_columns(path: os.PathLike[str] | str, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``columns`` of the log as float arrays; empty cells (no validation split) are NaN.

    Raises a ValueError naming the file when it is not a training log or holds no epochs.
    """
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: not a training log (missing columns {', '.join(missing)})")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: the training log has no epochs")
    try:
        return {c: np.array([float(r[c] or "nan") for r in rows]) for c in columns}
    except ValueError as e:
        raise ValueError(f"{path}: non-numeric value in the training log ({e})") from None
