"""Entry-point wrapper for the DVC stage scripts: one error contract for every stage.

An expected failure — bad params, bad data, a missing input, a folder we may not write, a full
disk or a file-size limit, an unreachable host — ends with one ``error:`` line that names the
file and what to do, and exit status 1. The library raises errors that already say this
(``ConfigError``, ``NYUFormatError``, ``DownloadError``, ...) or an ``OSError`` naming the file
(``pipeline.io`` adds the output's name where the OS gives none); the user should see that
message, not a traceback. Anything else is a bug in this code: its traceback is printed,
followed by a line saying so, and the exit status is 70 (EX_SOFTWARE).
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
import traceback
from collections.abc import Callable

from pipeline.access import access_message
from pipeline.download import DownloadError

BUG_EXIT = 70  # sysexits.h EX_SOFTWARE: an internal software error

# What to do about the OS errors a stage can meet; the file comes from the exception.
_ADVICE = {
    errno.EACCES: "make the folder writable for this user, or run as a user who can write it",
    errno.EPERM: "make the folder writable for this user, or run as a user who can write it",
    errno.EROFS: "the filesystem is mounted read-only: write the outputs somewhere writable",
    errno.ENOSPC: "the disk is full: free space on that filesystem, then run the stage again",
    errno.EDQUOT: "the disk quota is used up: free space or raise the quota, then run again",
    errno.EFBIG: (
        "the file outgrew the file-size limit (`ulimit -f`) or the filesystem's largest file: "
        "raise the limit or write to another filesystem, then run again"
    ),
    errno.ENOENT: "no such file or folder: run the stages before this one (`dvc repro`)",
    errno.EISDIR: "a folder is in the way of this file: move it aside, then run again",
    errno.ENOTDIR: "part of this path is a file, not a folder: move it aside, then run again",
    errno.EEXIST: "a file is where this folder should be: move it aside, then run again",
}


def describe(exc: BaseException) -> str:
    """The one-line message for an expected failure (without the ``error:`` prefix)."""
    if not isinstance(exc, OSError) or exc.errno is None or exc.strerror is None:
        return str(exc)  # our own errors, whose message names the file and the problem
    where = f"{exc.filename}: " if exc.filename is not None else ""
    advice = _ADVICE.get(exc.errno)
    return f"{where}{exc.strerror}" + (f" ({advice})" if advice else "")


def run_stage(main: Callable[[], object]) -> None:
    """Call ``main`` under the error contract above; never return a traceback for user errors."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)  # our progress notes, not the libraries'
    # By default a write past `ulimit -f` kills the process with SIGXFSZ and no message; ignored,
    # the write fails with EFBIG and the stage reports it like a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        main()
    except (ValueError, OSError, DownloadError) as exc:  # ConfigError, NYUFormatError, EACCES...
        print(f"error: {describe(exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; run the stage again to redo it", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if message := access_message(exc):  # a tracking server's 401 or 403: not a bug
            print(f"error: {message}", file=sys.stderr)
            sys.exit(1)
        traceback.print_exc()
        print(
            "error: this is a bug in the pipeline, not in your data or params: please report it "
            "with the traceback above",
            file=sys.stderr,
        )
        sys.exit(BUG_EXIT)
