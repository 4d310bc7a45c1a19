"""A real HTTP file server on 127.0.0.1 for the raw archives: Range requests, one cut per file."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FileServer

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        path = self.server.root / name
        self.server.requests.append(name)
        if "/" in name or not path.is_file():
            self.send_error(404)
            return
        body, start = path.read_bytes(), 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match:
            start = int(match[1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if name.endswith(".zip") and name not in self.server.cut:
            self.server.cut.add(name)  # the first transfer of each archive breaks halfway
            self.wfile.write(chunk[: len(chunk) // 2])
            self.close_connection = True
            return
        self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read ``FileServer.requests``."""


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root)
        self.requests: list[str] = []
        self.cut: set[str] = set()

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(root: Path) -> Iterator[FileServer]:
    """Serve the files of ``root`` (flat) for the block."""
    server = FileServer(root)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
