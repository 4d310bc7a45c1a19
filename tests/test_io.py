"""Atomic outputs: a failure leaves neither a partial destination nor a stray temporary file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.io import atomic_path, atomic_write_json, link_or_copy, md5sum


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_json_creates_parents(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b.json"
    atomic_write_json(dest, {"z": 1, "a": [1, 2]})
    assert json.loads(dest.read_text()) == {"a": [1, 2], "z": 1}
    assert dest.read_text().startswith('{\n  "a"')  # sorted keys: stable bytes for DVC


def test_link_or_copy_replaces_destination(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "raw" / "dest.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"stale")
    link_or_copy(src, dest)
    assert dest.read_bytes() == b"payload"
    assert dest.stat().st_ino == src.stat().st_ino  # same filesystem: a hard link, no copy
    assert md5sum(dest) == "321c3cf486ed509164edec1e1981fec8"
