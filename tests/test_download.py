"""``fetch`` against real HTTP servers on 127.0.0.1 that misbehave the way mirrors do."""

from __future__ import annotations

import hashlib
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from e2e import closed_url

from pipeline.download import ChecksumError, DownloadError, fetch, partial_path

PAYLOAD = random.Random(0).randbytes(1_500_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
FAST = {"backoff": 0.01, "timeout": 5.0, "chunk_size": 64 * 1024}


@dataclass
class Behaviour:
    """How the test server answers; counters refer to the 1-based number of the GET."""

    body: bytes = PAYLOAD
    honour_range: bool = True
    drop_first_after: int | None = None  # first GET: send this many body bytes, then hang up
    status_first: int | None = None  # first GET: answer with this status and no body
    always_status: int | None = None
    stall_first_s: float = 0.0  # first GET: wait this long before answering
    range_from_zero: bool = False  # answer every Range with bytes from 0 (a broken server)
    requests: list[dict[str, str]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        behaviour.requests.append(dict(self.headers))
        first = len(behaviour.requests) == 1
        if first and behaviour.stall_first_s:
            time.sleep(behaviour.stall_first_s)
        status = behaviour.always_status or (behaviour.status_first if first else None)
        if status:
            self.send_error(status)
            return
        body, start = behaviour.body, 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and behaviour.honour_range:
            start = 0 if behaviour.range_from_zero else int(match[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if first and behaviour.drop_first_after is not None:
            self.wfile.write(chunk[: behaviour.drop_first_after])
            self.close_connection = True
            return
        self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr line; tests read ``Behaviour.requests`` instead."""


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour = behaviour

    def handle_error(self, request: object, client_address: object) -> None:
        """Keep quiet when the client hangs up mid-body, as fetch does on a bad 206."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/nyu_depth_v2_labeled.mat"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start servers on demand; stop them all when the test ends."""
    started: list[tuple[Server, threading.Thread]] = []

    def start(**behaviour: object) -> Server:
        server = Server(Behaviour(**behaviour))  # type: ignore[arg-type]
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "raw" / "nyu_depth_v2_labeled.mat"


def test_resumes_after_connection_drop(serve: Callable[..., Server], dest: Path) -> None:
    server = serve(drop_first_after=600_000)
    assert fetch(server.url, dest, PAYLOAD_MD5, **FAST) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not partial_path(dest).exists()
    first, second = server.behaviour.requests
    assert "Range" not in first
    resumed_from = int(re.fullmatch(r"bytes=(\d+)-", second["Range"])[1])
    assert 0 < resumed_from <= 600_000


def test_restarts_from_zero_when_range_is_ignored(serve: Callable[..., Server], dest: Path) -> None:
    server = serve(honour_range=False, drop_first_after=600_000)
    fetch(server.url, dest, PAYLOAD_MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert "Range" in server.behaviour.requests[1]  # asked to resume, got the whole file


def test_restarts_from_zero_when_range_starts_elsewhere(
    serve: Callable[..., Server], dest: Path
) -> None:
    partial_path(dest).parent.mkdir(parents=True)
    partial_path(dest).write_bytes(PAYLOAD[:1000])
    server = serve(range_from_zero=True)
    fetch(server.url, dest, PAYLOAD_MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD
    first, second = server.behaviour.requests
    assert first["Range"] == "bytes=1000-"
    assert "Range" not in second


def test_resumes_partial_left_by_an_earlier_run(serve: Callable[..., Server], dest: Path) -> None:
    partial_path(dest).parent.mkdir(parents=True)
    partial_path(dest).write_bytes(PAYLOAD[:700_000])
    server = serve()
    fetch(server.url, dest, PAYLOAD_MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in server.behaviour.requests] == ["bytes=700000-"]


def test_complete_partial_answered_with_416_is_verified(
    serve: Callable[..., Server], dest: Path
) -> None:
    partial_path(dest).parent.mkdir(parents=True)
    partial_path(dest).write_bytes(PAYLOAD)
    server = serve()
    fetch(server.url, dest, PAYLOAD_MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in server.behaviour.requests] == [f"bytes={len(PAYLOAD)}-"]


def test_wrong_bytes_raise_and_leave_nothing(serve: Callable[..., Server], dest: Path) -> None:
    corrupted = bytes([PAYLOAD[0] ^ 1]) + PAYLOAD[1:]
    server = serve(body=corrupted)
    with pytest.raises(ChecksumError) as info:
        fetch(server.url, dest, PAYLOAD_MD5, **FAST)
    message = str(info.value)
    assert server.url in message
    assert PAYLOAD_MD5 in message
    assert hashlib.md5(corrupted).hexdigest() in message
    assert not dest.exists()
    assert not partial_path(dest).exists()


def test_unreachable_host_explains_manual_download(dest: Path) -> None:
    url = closed_url("/nyu_depth_v2_labeled.mat")
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, PAYLOAD_MD5, retries=2, **FAST)
    message = str(info.value)
    assert url in message
    assert PAYLOAD_MD5 in message
    assert str(dest.absolute()) in message
    assert not isinstance(info.value, ChecksumError)
    assert not dest.exists()


def test_hand_placed_file_is_accepted_without_a_request(
    serve: Callable[..., Server], dest: Path
) -> None:
    dest.parent.mkdir(parents=True)
    dest.write_bytes(PAYLOAD)
    server = serve()
    assert fetch(server.url, dest, PAYLOAD_MD5.upper(), **FAST) == dest
    assert server.behaviour.requests == []


def test_existing_file_with_wrong_checksum_is_left_alone(
    serve: Callable[..., Server], dest: Path
) -> None:
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"not the dataset")
    server = serve()
    with pytest.raises(ChecksumError) as info:
        fetch(server.url, dest, PAYLOAD_MD5, **FAST)
    assert str(dest) in str(info.value)
    assert hashlib.md5(b"not the dataset").hexdigest() in str(info.value)
    assert dest.read_bytes() == b"not the dataset"
    assert server.behaviour.requests == []


def test_retries_a_503(serve: Callable[..., Server], dest: Path) -> None:
    server = serve(status_first=503)
    fetch(server.url, dest, PAYLOAD_MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.behaviour.requests) == 2


def test_retries_after_a_read_timeout(serve: Callable[..., Server], dest: Path) -> None:
    server = serve(stall_first_s=1.0)
    fetch(server.url, dest, PAYLOAD_MD5, **{**FAST, "timeout": 0.2})
    assert dest.read_bytes() == PAYLOAD
    assert len(server.behaviour.requests) == 2


def test_gives_up_after_bounded_retries(serve: Callable[..., Server], dest: Path) -> None:
    server = serve(always_status=503)
    with pytest.raises(DownloadError, match="503") as info:
        fetch(server.url, dest, PAYLOAD_MD5, retries=3, **FAST)
    assert str(dest) in str(info.value)
    assert len(server.behaviour.requests) == 4


def test_does_not_retry_a_404(serve: Callable[..., Server], dest: Path) -> None:
    server = serve(always_status=404)
    with pytest.raises(DownloadError, match="404") as info:
        fetch(server.url, dest, PAYLOAD_MD5, **FAST)
    assert server.url in str(info.value)
    assert len(server.behaviour.requests) == 1


def test_rejects_a_malformed_md5(dest: Path) -> None:
    with pytest.raises(ValueError, match="32 hex digits"):
        fetch("http://127.0.0.1:9/x", dest, "abc")
