"""Atomic file output and hashing shared by every stage.

Stages write to a temporary sibling and rename it into place, so a crash, Ctrl-C or ``kill -9``
never leaves a half-written output that DVC or a later stage could mistake for a finished one.
Temporaries are named ``.<output name>.<8 hex digits>.tmp`` beside their output: a later run
recognises what a killed one left and removes it (:func:`remove_stale_temps`). They are created
with mode 0666 minus the umask, like any new file, so published outputs are not private.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import h5py

# Errors of writing a file: raised by a write() that has no file name to report.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


def _temp_glob(dest: Path) -> str:
    return glob.escape(f".{dest.name}.") + "[0-9a-f]" * 8 + "*"


def remove_stale_temps(*dests: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries a killed run left beside ``dests``; return the paths removed.

    Stages call this first: DVC runs one stage at a time in a workspace, so any temporary of
    the stage's outputs belongs to a run that died and will never be renamed into place.
    """
    removed = []
    for dest in map(Path, dests):
        for stale in dest.parent.glob(_temp_glob(dest)):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def _with_output_name(exc: OSError, tmp: Path, dest: Path) -> OSError:
    """``exc`` naming ``dest``, when it names our temporary or no file at all.

    A write() that hits a full disk or a file-size limit reports no file name, and a temporary
    name means nothing to the user; both are about the output being written.
    """
    names_tmp = exc.filename == str(tmp)
    if names_tmp or (exc.filename is None and exc.errno in _WRITE_ERRNOS):
        return OSError(exc.errno, exc.strerror, str(dest))  # keeps the subclass, e.g. EACCES
    return exc


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Write errors raised in the block that name no file (a full disk, a file-size limit) are
    about ``path``: inside ``atomic_outputs`` only the writer knows which temporary it filled."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno in _WRITE_ERRNOS:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


@contextmanager
def _temp_beside(dest: Path, suffix: str = ".tmp", sole: bool = True) -> Iterator[Path]:
    """An empty file in ``dest``'s folder (same filesystem: the rename is atomic); removed on
    exit unless it was renamed away. OSErrors about it are re-raised naming ``dest``, and so are
    write errors that name no file when it is the ``sole`` temporary being written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{suffix}")
        try:  # unlike mkstemp (0600), mode 0666 lets the umask decide, as for any new file
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise _with_output_name(exc, tmp, dest) from None
    try:
        yield tmp
    except OSError as exc:
        renamed = _with_output_name(exc, tmp, dest) if sole or exc.filename else exc
        if renamed is exc:
            raise
        raise renamed from exc
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
    mixture of a new one and an old one: every temp is written first, then the old outputs are
    removed and all temps renamed. A failure in the block leaves the old set untouched; a
    ``kill -9`` between the renames leaves part of the new set and none of the old.
    """
    paths = [Path(d) for d in dests]
    with ExitStack() as stack:
        sole = len(paths) == 1
        tmps = tuple(stack.enter_context(_temp_beside(p, sole=sole)) for p in paths)
        try:
            yield tmps
        except OSError as exc:  # a write error of no file: which temp, the writer did not say
            if exc.filename is None and exc.errno in _WRITE_ERRNOS:
                names = ", ".join(map(str, paths))
                raise OSError(exc.errno, exc.strerror, names) from exc
            raise
        for dest in paths:  # the one thing in the way that unlink cannot remove: fail first
            if dest.is_dir() and not dest.is_symlink():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(dest))
        for dest in paths:
            dest.unlink(missing_ok=True)
        for tmp, dest in zip(tmps, paths, strict=True):
            os.replace(tmp, dest)


def atomic_write_text(dest: str | os.PathLike[str], text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def atomic_write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def file_digest(path: str | os.PathLike[str], algorithm: str) -> str:
    """Hex digest (``hashlib`` name) of a file, streamed so multi-GB files never sit in memory."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def md5sum(path: str | os.PathLike[str]) -> str:
    return file_digest(path, "md5")


def _link_or_copy_onto(src: str | os.PathLike[str], tmp: Path) -> None:
    tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:  # other filesystem, or links not supported
        shutil.copyfile(src, tmp)


def link_or_copy(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Place ``src`` at ``dest`` as a hard link (no second copy of a 3 GB file), else a copy.

    Either way ``dest`` appears atomically, replacing whatever was there.
    """
    with atomic_path(dest) as tmp:
        _link_or_copy_onto(src, tmp)
    return Path(dest)


def link_or_copy_together(
    *pairs: tuple[str | os.PathLike[str], str | os.PathLike[str]],
) -> list[Path]:
    """``link_or_copy`` each ``(src, dest)``; the destinations are published together."""
    dests = [Path(dest) for _, dest in pairs]
    with atomic_outputs(*dests) as tmps:
        for (src, _), tmp in zip(pairs, tmps, strict=True):
            _link_or_copy_onto(src, tmp)
    return dests


class _WriteGuard:
    """The file under an HDF5 file being written: HDF5 never sees a failed write.

    HDF5 cannot recover from a write error (a full disk, a file-size limit): closing the file
    then fails half-way, and the library crashes with a segmentation fault when it shuts down
    (h5py issues #914 and #2160). So h5py writes through this object (its ``fileobj`` driver),
    which keeps the first error and drops every later write; the caller raises that error once
    HDF5 has closed the file cleanly.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: OSError | None = None
        self._file = open(path, "w+b", buffering=0)  # noqa: SIM115 (closed by NewH5File)

    def __repr__(self) -> str:  # HDF5 uses it as the file name in its own messages
        return str(self.path)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size) or b""

    def readinto(self, buffer: memoryview) -> int:
        return self._file.readinto(buffer) or 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self.error is None:
            try:
                while view:  # an unbuffered write may take only part of the bytes
                    view = view[self._file.write(view) :]
            except OSError as exc:
                self.error = exc
        return size

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self._file.truncate(size)
            except OSError as exc:
                self.error = exc
        return size or 0

    def flush(self) -> None:
        """Nothing to flush: the file is unbuffered."""

    def close(self) -> None:
        self._file.close()

    def raise_error(self) -> None:
        if self.error is not None:
            exc = self.error
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc


class NewH5File(h5py.File):
    """A new HDF5 file at ``path`` whose write errors end as one OSError naming the file.

    Use it like ``h5py.File(path, "w", **kwargs)``. A failed write (full disk, file-size limit)
    is raised by :meth:`raise_write_error` (call it in long write loops to stop early) and at
    the latest by ``close``, after HDF5 has closed the file, instead of crashing the process.
    """

    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        guard = _WriteGuard(Path(path))
        try:
            super().__init__(guard, "w", **kwargs)
        except BaseException:
            guard.close()
            raise
        self._guard = guard

    def raise_write_error(self) -> None:
        self._guard.raise_error()

    def close(self) -> None:
        super().close()
        self._guard.close()
        self._guard.raise_error()
