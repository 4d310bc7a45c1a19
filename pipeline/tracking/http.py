"""MLflow's client settings for a block: how long it may retry over HTTP (seconds at start-up and
per epoch, not minutes), and which login it sends.

MLflow's client takes neither as arguments: it reads environment variables on every request, so
they are set for the length of a block and restored after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

LIVE_RETRIES, LIVE_TIMEOUT_S = 2, 10  # per-epoch logging: a dead server stalls training briefly


@contextmanager
def client_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set these environment variables for the block, then restore each (or remove it) alone:
    the rest of the environment, e.g. a tracking URI set inside the block, stays."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def http_policy(retries: int, timeout_s: int) -> AbstractContextManager[None]:
    """Bound MLflow's HTTP retries, back-off and timeout for the block (its defaults retry for
    minutes)."""
    return client_env(
        {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
        }
    )
