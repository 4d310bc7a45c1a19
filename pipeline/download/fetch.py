"""`fetch`: a file from a URL, checked against its checksum, resumed after an interruption."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from pipeline.download.transfer import DownloadError, download
from pipeline.io import file_digest

logger = logging.getLogger("pipeline.download")

# Hex digest length -> (hashlib name, name in messages).
_ALGORITHMS = {32: ("md5", "MD5"), 64: ("sha256", "SHA-256")}
_HEX_RE = re.compile(r"[0-9a-f]+")


class ChecksumError(DownloadError):
    """A downloaded or hand-placed file does not have the expected checksum."""


def partial_path(dest: str | os.PathLike[str]) -> Path:
    """Where ``fetch`` keeps the bytes of an unfinished download of ``dest``.

    A fixed name (not a random temporary one) so that a later run finds and resumes it.
    """
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    checksum: str | None,
    *,
    retries: int = 5,
    timeout: float = 30.0,
    backoff: float = 1.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` already has ``checksum``; return ``dest``.

    ``checksum`` is an MD5 (32 hex digits) or a SHA-256 (64), told apart by its length.

    ``retries`` bounds consecutive attempts that add no bytes to the partial file (an attempt
    that makes progress resets the count, so a server that drops a 3 GB transfer every few
    hundred MB still gets it done). The n-th such retry waits ``backoff * 2**(n-1)`` seconds,
    at most 60. ``timeout`` applies to connecting and to each read of the body.

    An existing ``dest`` with the wrong checksum raises :class:`ChecksumError` and is left alone: it
    may be a copy the user placed by hand, and overwriting or moving aside gigabytes of their
    file without asking would be a surprise; the message tells them to delete or replace it.
    ``checksum=None`` (a file the server publishes no checksum for) skips both checks.

    The progress bar (tqdm, to stderr) is shown only when stderr is a terminal, so logs of
    non-interactive runs stay clean.
    """
    expected, algorithm, label = _parse_checksum(url, checksum)
    dest = Path(dest).absolute()
    if dest.exists():
        _check_present(url, dest, expected, algorithm, label)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    described = f"{label} {expected}" if expected else None
    download(url, part, dest, described, retries, timeout, backoff, chunk_size)
    actual = file_digest(part, algorithm) if expected else None
    if actual != expected:
        part.unlink()
        raise ChecksumError(
            f"download of {url} has {label} {actual}, expected {expected}; it was deleted, so the "
            f"next run starts from zero. If the server keeps sending these bytes, get the file "
            f"by other means and place it at {dest}."
        )
    os.replace(part, dest)
    logger.info("downloaded %s to %s (%s verified)", url, dest, label)
    return dest


def _parse_checksum(url: str, checksum: str | None) -> tuple[str | None, str, str]:
    """(lower-case digest or None, hashlib name, name in messages) of an expected checksum."""
    if checksum is None:
        return None, "", "no checksum"
    expected = checksum.strip().lower()
    if not (_HEX_RE.fullmatch(expected) and len(expected) in _ALGORITHMS):
        raise ValueError(
            f"expected checksum for {url} must be an MD5 (32 hex digits) or a SHA-256 (64), "
            f"got {checksum!r}"
        )
    algorithm, label = _ALGORITHMS[len(expected)]
    return expected, algorithm, label


def _check_present(url: str, dest: Path, expected: str | None, algorithm: str, label: str) -> None:
    """Accept an existing ``dest`` with the expected checksum (or when there is none)."""
    if expected is None:
        return
    actual = file_digest(dest, algorithm)
    if actual == expected:
        logger.info("%s already present with the expected %s; not downloading", dest, label)
        return
    raise ChecksumError(
        f"{dest} exists but its {label} is {actual}, expected {expected} (the file from "
        f"{url}). "
        "It was left untouched: delete it to download again, or replace it with a good copy."
    )
