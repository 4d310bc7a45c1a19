"""A real HTTP mirror of a folder on 127.0.0.1: Range requests, and the faults mirrors have.

``throttle``: ~10 MB/s, slow enough for a test to kill a client mid-transfer. ``cut``: the first
transfer of each file whose name ends so breaks halfway (a dropped connection to resume).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.data.nyu import LABELED_NAME, SPLITS_NAME
from pipeline.io import md5sum

_CHUNK = 256 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Mirror

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        path = self.server.root / name
        self.server.requests.append(name)
        if not path.is_file():
            self.send_error(404)
            return
        body, start = path.read_bytes(), 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and int(match[1]) >= len(body):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if match:
            start = int(match[1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        end = len(body)
        if self.server.cut and name.endswith(self.server.cut) and name not in self.server.was_cut:
            self.server.was_cut.add(name)
            end, self.close_connection = start + (len(body) - start) // 2, True
        for offset in range(start, end, _CHUNK):
            self.wfile.write(body[offset : min(offset + _CHUNK, end)])
            if self.server.throttle:
                time.sleep(0.025)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read ``Mirror.requests``; a killed client is expected."""


class Mirror(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, throttle: bool = False, cut: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.throttle, self.cut = Path(root), throttle, cut
        self.requests: list[str] = []
        self.was_cut: set[str] = set()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-body breaks the pipe: expected, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(root: Path, throttle: bool = False, cut: str | None = None) -> Iterator[Mirror]:
    """Serve ``root`` for the block."""
    server = Mirror(root, throttle, cut)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def nyu_params(url: str, files: Path, retries: int = 1) -> dict[str, object]:
    """Params (dotted keys) that make `download` fetch the labeled file and the splits from
    ``url``, a mirror of ``files``, checked against their md5s."""
    return {
        "data.source": "nyu",
        "data.nyu.labeled_url": f"{url}/{LABELED_NAME}",
        "data.nyu.labeled_md5": md5sum(files / LABELED_NAME),
        "data.nyu.splits_url": f"{url}/{SPLITS_NAME}",
        "data.nyu.splits_md5": md5sum(files / SPLITS_NAME),
        "data.nyu.retries": retries,
        "data.nyu.backoff_s": 0.01,
    }
