"""Throughput of ``fetch`` for one large file served from 127.0.0.1.

Generates a random file of --size-mb megabytes (10**6 bytes) in a temporary directory (not
timed), serves it with the standard library's file server, downloads it with ``fetch`` and
prints one JSON object. ``seconds`` is what a user waits (transfer plus the MD5 check before the
rename); ``md5_seconds`` times the MD5 of the same file on its own, so the transfer share is
about ``seconds - md5_seconds``. Loopback with a Python server on the same cores is an upper
bound far above any real mirror: the point is that the client is never the bottleneck.

    .venv/bin/python benchmarks/download.py --size-mb 300
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.download import fetch
from pipeline.io import md5sum

MB = 1_000_000
BLOCK = 1 << 20


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Drop the per-request stderr line so stdout/stderr hold only the JSON result."""


def write_random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their MD5."""
    digest = hashlib.md5()
    with open(path, "wb") as f:
        for start in range(0, size, BLOCK):
            block = os.urandom(min(BLOCK, size - start))
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=300.0)
    parser.add_argument("--chunk-size", type=int, default=1 << 20, help="fetch's read size")
    args = parser.parse_args()
    size = int(args.size_mb * MB)

    with tempfile.TemporaryDirectory(prefix="download-bench-") as tmp:
        served, dest = Path(tmp, "served"), Path(tmp, "fetched", "data.bin")
        served.mkdir()
        md5 = write_random_file(served / "data.bin", size)
        handler = functools.partial(QuietHandler, directory=str(served))
        with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            url = f"http://127.0.0.1:{server.server_address[1]}/data.bin"
            start = time.perf_counter()
            fetch(url, dest, md5, chunk_size=args.chunk_size)
            seconds = time.perf_counter() - start
            server.shutdown()
            thread.join()
        start = time.perf_counter()
        md5sum(dest)
        md5_seconds = time.perf_counter() - start

    print(
        json.dumps(
            {
                "benchmark": "download",
                "size_bytes": size,
                "chunk_size": args.chunk_size,
                "seconds": round(seconds, 3),
                "mb_per_s": round(size / MB / seconds, 1),
                "md5_seconds": round(md5_seconds, 3),
                "md5_mb_per_s": round(size / MB / md5_seconds, 1),
                "transfer_mb_per_s": round(size / MB / (seconds - md5_seconds), 1),
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
