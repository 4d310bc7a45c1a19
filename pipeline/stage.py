"""Entry-point wrapper for the DVC stage scripts.

Expected failures (bad params, malformed data, an unreachable download host) already carry a
message naming the file and the problem; the user should see that message, not a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from pipeline.data.download import DownloadError


def run_stage(main: Callable[[], object]) -> None:
    """Call ``main``; print expected errors as one ``error:`` line and exit with status 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)  # our progress notes, not the libraries'
    try:
        main()
    except (ValueError, FileNotFoundError, DownloadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
