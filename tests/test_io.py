"""Atomic outputs: a failure leaves neither a partial destination nor a stray temporary file,
outputs of one stage appear together, and a full disk is an error, not a crash."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.io import (
    atomic_outputs,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    link_or_copy,
    link_or_copy_together,
    md5sum,
    remove_stale_temps,
)


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


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_umask_mode(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "a")
        with atomic_outputs(tmp_path / "b.txt") as (tmp,):
            tmp.write_text("b")
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {mode}


def test_stale_temps_are_recognised_and_only_they(tmp_path: Path) -> None:
    dest = tmp_path / "train.h5"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        stale = tmp.with_name(tmp.name + ".copy")  # what a killed run leaves: the same pattern
        tmp.rename(stale)
        raise RuntimeError
    keep = ["train.h5", ".train.h5.swp", ".test.h5.0123abcd.tmp", "train.h5.part"]
    for name in keep:
        (tmp_path / name).write_text("x")
    assert remove_stale_temps(dest) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_atomic_outputs_failure_publishes_nothing(tmp_path: Path) -> None:
    first, second = tmp_path / "train.h5", tmp_path / "test.h5"
    first.write_text("old train")
    second.write_text("old test")
    with pytest.raises(OSError, match="disk full"), atomic_outputs(first, second) as (a, _):
        a.write_text("new train")
        raise OSError("disk full")
    assert (first.read_text(), second.read_text()) == ("old train", "old test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.h5", "train.h5"]


def test_atomic_outputs_checks_every_destination_before_renaming(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.html"
    first.write_text("old")
    second.mkdir()
    with pytest.raises(IsADirectoryError) as info, atomic_outputs(first, second) as (a, b):
        a.write_text("new")
        b.write_text("new")
    assert info.value.filename == str(second)
    assert first.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.html"]


def test_write_error_without_a_name_gets_the_output_name(tmp_path: Path) -> None:
    """write() on a full disk names no file; the temporary's name would mean nothing."""
    dest = tmp_path / "out.bin"
    with pytest.raises(OSError) as info, atomic_path(dest):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(dest))
    with pytest.raises(OSError) as info, atomic_path(dest):
        raise ConnectionError("not about the file")  # an OSError with no errno: left alone
    assert info.value.filename is None


def test_link_or_copy_together(tmp_path: Path) -> None:
    sources = [tmp_path / "x", tmp_path / "y"]
    for i, src in enumerate(sources):
        src.write_bytes(bytes([i]))
    pairs = zip(sources, [tmp_path / "raw/x", tmp_path / "raw/y"], strict=True)
    dests = link_or_copy_together(*pairs)
    assert [d.stat().st_ino for d in dests] == [s.stat().st_ino for s in sources]


def test_new_h5_file_reports_a_write_error_instead_of_crashing(tmp_path: Path) -> None:
    """HDF5 crashes at exit after a failed write (h5py #914): the writer must end cleanly."""
    code = f"""
import resource, signal, numpy as np
from pipeline.io import NewH5File
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    with NewH5File({str(tmp_path / "x.h5")!r}) as f:
        ds = f.create_dataset("d", (20, 480, 640), np.float32, chunks=(1, 480, 640))
        for i in range(20):
            ds[i] = np.ones((480, 640), np.float32)
            f.raise_write_error()
except OSError as exc:
    print(exc.errno, exc.filename, i)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    code_, name, last_image = proc.stdout.split()
    assert (int(code_), name) == (errno.EFBIG, str(tmp_path / "x.h5"))
    assert int(last_image) < 19  # stopped once the chunk cache spilled, not at the end
