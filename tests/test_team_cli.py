"""`python -m pipeline.team`'s refusals (fast: nothing starts) and the lines an authenticated
server's 401 / 403 become."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    PERMISSION_DENIED,
    UNAUTHENTICATED,
)

from pipeline.access import access_message


def _up(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "FCRN_TEAM_DIR": str(tmp_path / "team"), **env}
    cmd = [sys.executable, "-m", "pipeline.team", "up"]
    return subprocess.run(cmd, env=full, text=True, capture_output=True, cwd=tmp_path)


def test_a_taken_port_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = _up(
            tmp_path, MLFLOW_AUTH_ADMIN_PASSWORD="a" * 16, FCRN_TEAM_PORTS=f"mlflow={port}"
        )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is taken (mlflow): stop what listens there "
        f"(`ss -ltnp 'sport = :{port}'`) or choose another port (FCRN_TEAM_PORTS, docs/team.md)"
    ]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MLFLOW_AUTH_ADMIN_PASSWORD": "short"}, "MLFLOW_AUTH_ADMIN_PASSWORD"),
        ({"MLFLOW_AUTH_ADMIN_PASSWORD": "a" * 16, "FCRN_TEAM_PORTS": "mlfow=1"}, "'mlfow=1'"),
    ],
)
def test_bad_settings_are_one_error_line(tmp_path: Path, env: dict[str, str], says: str) -> None:
    result = _up(tmp_path, **env)
    (line,) = result.stderr.strip().splitlines()
    assert result.returncode == 1 and line.startswith("error:") and says in line
    assert not (tmp_path / "team").exists()  # nothing started, nothing written


def test_401_and_403_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    denied = MlflowException(
        "API request to endpoint /api/2.0/mlflow/model-versions/create failed with error code "
        "403 != 200. Response body: 'Permission denied'",
        error_code=PERMISSION_DENIED,
    )
    unauthenticated = MlflowException("401", error_code=UNAUTHENTICATED)
    assert "no login given" in access_message(unauthenticated)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2-hunter2")
    line = access_message(unauthenticated)
    assert "'reader' or its password is wrong" in line and "hunter2" not in line
    assert "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD" in line
    assert access_message(denied) == (
        "MLflow at http://127.0.0.1:5000: user 'reader' may not register a model version "
        "(HTTP 403, permission denied on /model-versions/create): ask the server's admin for "
        "EDIT on the registered model, or run this with an account that has it (the CI "
        "account; docs/team.md)"
    )
    assert access_message(MlflowException("x", error_code=INVALID_PARAMETER_VALUE)) is None
