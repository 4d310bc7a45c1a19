"""The HTTP side of `fetch`: attempts, resumes with ``Range``, retries with back-off.

What is retried and why is told in the package docstring (`pipeline.download`).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import requests
from tqdm import tqdm

logger = logging.getLogger("pipeline.download")

# Statuses that may succeed if asked again; every other status >= 400 except 416 is final.
_RETRY_STATUSES = frozenset({408, 429})
_MAX_DELAY_S = 60.0
_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE_RE = re.compile(r"bytes \*/(\d+)")
# What requests raises for a refused/reset connection, a timeout or a body cut short.
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message says what to do about it."""


class _RetryableError(Exception):
    """An attempt failed in a way that another attempt may fix."""


def download(
    url: str,
    part: Path,
    dest: Path,
    checksum: str | None,
    retries: int,
    timeout: float,
    backoff: float,
    chunk_size: int,
) -> None:
    """Run attempts until ``part`` holds the whole body, or give up with a manual-copy hint."""
    failures = 0
    with requests.Session() as session:
        while True:
            before = _size(part)
            try:
                _attempt(session, url, part, timeout, chunk_size, dest.name)
                return
            except _RetryableError as exc:
                reason = str(exc)
            except _NETWORK_ERRORS as exc:
                reason = _network_reason(exc)
            except requests.RequestException as exc:  # bad URL, too many redirects, ...
                raise DownloadError(f"could not download {url}: {exc}") from exc
            failures = 0 if _size(part) > before else failures + 1
            if failures > retries:
                raise DownloadError(
                    f"could not download {url} ({reason}; gave up after {retries + 1} attempts "
                    f"without progress). If this machine is offline or the host is down, get "
                    f"the file by other means and place it at {dest}"
                    f"{f' (expected {checksum})' if checksum else ''}; the "
                    "next run verifies it and uses it without downloading."
                )
            delay = min(backoff * 2 ** max(failures - 1, 0), _MAX_DELAY_S)
            logger.warning(
                "download of %s failed (%s); %d bytes kept, retrying in %.2fs",
                url,
                reason,
                _size(part),
                delay,
            )
            time.sleep(delay)


def _attempt(
    session: requests.Session, url: str, part: Path, timeout: float, chunk_size: int, label: str
) -> None:
    """One request: append to (206) or rewrite (200) ``part`` and check the body is complete.

    Raises :class:`_RetryableError` or a requests network error for failures worth retrying,
    :class:`DownloadError` or another requests error for final ones.
    """
    offset = _size(part)
    # Identity encoding: Range offsets and Content-Length must count the bytes we store.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status == 416 and offset:
            _check_complete_partial(response, part, offset)
            return
        if status in _RETRY_STATUSES or status >= 500:
            raise _RetryableError(f"HTTP {status} {response.reason}")
        length = _content_length(response)
        if status == 206:
            start, end, total = _content_range(response)
            if start != offset:
                part.unlink(missing_ok=True)
                raise _RetryableError(
                    f"asked for bytes from {offset}, got Content-Range "
                    f"{response.headers.get('Content-Range')!r}; restarting from zero"
                )
            if length is None:
                length = end + 1 - start
            mode = "ab"
        elif status == 200:
            if offset:
                logger.info("server ignored the Range request for %s; restarting from zero", url)
            offset, total, mode = 0, length, "wb"
        else:
            raise DownloadError(f"could not download {url}: HTTP {status} {response.reason}")
        received = _stream(response, part, mode, offset, total, chunk_size, label)
    if length is not None and received != length:
        raise _RetryableError(f"connection closed after {received} of {length} bytes")
    if total is not None and offset + received != total:
        raise _RetryableError(f"have {offset + received} of {total} bytes")


def _stream(
    response: requests.Response,
    part: Path,
    mode: str,
    offset: int,
    total: int | None,
    chunk_size: int,
    label: str,
) -> int:
    """Write the body to ``part``; return the number of bytes received.

    Unbuffered, so that a full disk or a file-size limit fails in ``write``, where the error
    can be given the file's name, rather than in a flush at close.
    """
    received = 0
    with (
        open(part, mode, buffering=0) as f,
        tqdm(
            desc=label,
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None,
        ) as bar,
    ):
        for chunk in response.iter_content(chunk_size):
            view = memoryview(chunk)
            try:
                while view:  # an unbuffered write may take only part of the bytes
                    view = view[f.write(view) :]
            except OSError as exc:  # the OS names no file; the bytes so far stay for a resume
                raise OSError(exc.errno, exc.strerror, str(part)) from exc
            received += len(chunk)
            bar.update(len(chunk))
    return received


def _check_complete_partial(response: requests.Response, part: Path, offset: int) -> None:
    """Handle 416 to ``Range: bytes=offset-``: the partial file may already be the whole file.

    If the server names another size, the partial file is stale: delete it and start again. If
    it names none, take the partial file as complete and let the checksum decide.
    """
    match = _UNSATISFIED_RANGE_RE.fullmatch(response.headers.get("Content-Range", ""))
    if match and int(match[1]) != offset:
        part.unlink()
        raise _RetryableError(
            f"server has {match[1]} bytes but the partial file has {offset}; restarting from zero"
        )


def _content_range(response: requests.Response) -> tuple[int, int, int | None]:
    """``(start, end, total)`` of a 206 response; start is -1 when the header is unusable."""
    match = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", ""))
    if not match:
        return -1, -1, None
    return int(match[1]), int(match[2]), None if match[3] == "*" else int(match[3])


def _network_reason(exc: requests.RequestException) -> str:
    """The root cause of a network error, without requests' connection-pool wrapping."""
    cause = exc.args[0] if exc.args else None
    return f"{type(exc).__name__}: {getattr(cause, 'reason', None) or exc}"


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
