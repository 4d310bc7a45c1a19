"""Atomic file output and hashing shared by every stage.

Stages write to a temporary sibling and rename it into place, so a crash or Ctrl-C never leaves
a half-written output that DVC or a later stage could mistake for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def _temp_beside(dest: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file in ``dest``'s folder (same filesystem: the rename is atomic); removed on
    exit unless it was renamed away."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(dest: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    On any exception the temporary file is removed and ``dest`` keeps its previous content.
    """
    dest = Path(dest)
    with _temp_beside(dest, suffix) as tmp:
        yield tmp
        os.replace(tmp, dest)


@contextmanager
def atomic_outputs(*dests: str | os.PathLike[str]) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary path per destination; publish them all only if the block succeeds.

    Outputs that belong together (train.h5 + test.h5, a model + its log) must never appear as a
    mixture of a new one and an old one: every temp is written first, then all are renamed.
    """
    with ExitStack() as stack:
        tmps = tuple(stack.enter_context(_temp_beside(Path(d))) for d in dests)
        yield tmps
        for tmp, dest in zip(tmps, dests, strict=True):
            os.replace(tmp, dest)


def atomic_write_text(dest: str | os.PathLike[str], text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def atomic_write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def md5sum(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex MD5 of a file, streamed so multi-GB files never sit in memory."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def link_or_copy(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Place ``src`` at ``dest`` as a hard link (no second copy of a 3 GB file), else a copy.

    Either way ``dest`` appears atomically, replacing whatever was there.
    """
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:  # other filesystem, or links not supported
            shutil.copyfile(src, tmp)
    return Path(dest)
