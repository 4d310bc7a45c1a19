"""Edit a params.yaml by dotted keys, as `dvc exp run -S key=value` does: for tools and tests
that derive a run from the committed params (no stage imports it)."""

from __future__ import annotations

from pathlib import Path

import yaml


def set_params(path: Path, changes: dict[str, object]) -> None:
    """Set dotted keys (``train.lr``) in the params file at ``path``; the other keys stay."""
    params = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
