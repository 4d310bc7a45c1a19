"""How long MLflow's HTTP client may retry: seconds at start-up and per epoch, not minutes.

MLflow's client takes no retry settings as arguments: it reads these environment variables on
every request, so the policy is set for the length of a block and restored after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

LIVE_RETRIES, LIVE_TIMEOUT_S = 2, 10  # per-epoch logging: a dead server stalls training briefly


@contextmanager
def http_policy(retries: int, timeout_s: int) -> Iterator[None]:
    """Bound MLflow's HTTP retries, back-off and timeout for the block (its defaults retry for
    minutes; it reads these variables on every request)."""
    policy = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
    }
    saved = {name: os.environ.get(name) for name in policy}
    os.environ.update(policy)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
