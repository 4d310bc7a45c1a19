"""MLflow's production set-up: `mlflow server` with a PostgreSQL backend store, a proxied
artifact store and the README's security options, bound to 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy
from e2e import SERVER_ENV, free_port
from mlflow import MlflowClient
from sqlalchemy import text

from pipeline.tracking.runs import log_dataset

pytestmark = pytest.mark.slow

PUBLIC_HOST = "mlflow.example.internal"  # the name clients would use behind a reverse proxy
ALLOWED_ORIGIN = f"https://{PUBLIC_HOST}"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group: MLflow's job consumers (huey) are children that
    can outlive the parent. SIGKILL whatever is left after 30 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def server(postgres_uri: str, module_tmp: Callable[[str], Path]) -> Iterator[str]:
    """Base URL of `mlflow server` on the PostgreSQL database, started as the README shows."""
    tmp = module_tmp("mlflow-server")
    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri", postgres_uri,
        "--artifacts-destination", str(tmp / "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
        "--allowed-hosts", f"{PUBLIC_HOST},127.0.0.1:{port}",
        "--cors-allowed-origins", ALLOWED_ORIGIN,
    ]  # fmt: skip
    env = {**os.environ, **SERVER_ENV}
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # ~12-25 s alone; more on a busy 2-core machine
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer /health:\n{log_path.read_text()}")
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        yield base
    finally:
        _stop(proc)


def test_runs_land_in_postgres_and_artifacts_in_the_store(
    server: str, postgres_uri: str, tmp_path: Path
) -> None:
    client = MlflowClient(tracking_uri=server)
    name = f"postgres-round-trip-{secrets.token_hex(4)}"  # the database may be shared
    experiment_id = client.create_experiment(name)
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    client.log_metric(run_id, "rel", 0.25)
    client.log_text(run_id, "hello", "notes/hello.txt")

    engine = sqlalchemy.create_engine(postgres_uri)
    with engine.connect() as conn:
        experiments = conn.execute(
            text("SELECT name FROM experiments WHERE experiment_id = :id"),
            {"id": int(experiment_id)},
        )
        assert experiments.all() == [(name,)]
        metrics = conn.execute(
            text("SELECT key, value FROM metrics WHERE run_uuid = :id"), {"id": run_id}
        )
        assert metrics.all() == [("rel", 0.25)]
    engine.dispose()
    # Artifacts go through the server's proxy to --artifacts-destination: clients need no
    # credentials for the artifact store.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    local = client.download_artifacts(run_id, "notes/hello.txt", dst_path=str(tmp_path))
    assert Path(local).read_text() == "hello"


def test_foreign_host_header_is_refused(server: str) -> None:
    """--allowed-hosts: DNS rebinding protection; only the names the server is reached by pass."""
    api = f"{server}/api/2.0/mlflow/experiments/get?experiment_id=0"
    assert requests.get(api, timeout=10).status_code == 200
    assert requests.get(api, headers={"Host": PUBLIC_HOST}, timeout=10).status_code == 200
    assert requests.get(api, headers={"Host": "evil.example"}, timeout=10).status_code == 403


def test_cors_allows_only_the_configured_origin(server: str) -> None:
    """--cors-allowed-origins: a browser page elsewhere cannot write to the tracking server."""
    api = f"{server}/api/2.0/mlflow/experiments/create"
    allowed = requests.post(
        api,
        json={"name": f"from-ui-{secrets.token_hex(4)}"},
        headers={"Origin": ALLOWED_ORIGIN},
        timeout=10,
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    foreign = requests.post(
        api,
        json={"name": f"from-elsewhere-{secrets.token_hex(4)}"},
        headers={"Origin": "https://evil.example"},
        timeout=10,
    )
    assert foreign.status_code == 403


def test_trainings_starting_together_all_record_their_data(server: str, tmp_path: Path) -> None:
    """Queued experiments start together and each records the same `train.h5` as its input:
    the store's look-up-then-insert of the dataset row races, and every run must still get it."""
    client = MlflowClient(tracking_uri=server)
    for round_ in range(3):  # a race: several tries make losing it near certain without a fix
        experiment_id = client.create_experiment(f"together-{round_}-{secrets.token_hex(4)}")
        run_ids = [client.create_run(experiment_id).info.run_id for _ in range(8)]
        digest = secrets.token_hex(16)
        start = threading.Barrier(len(run_ids))

        def record(run_id: str, digest: str = digest, start: threading.Barrier = start) -> None:
            start.wait()
            log_dataset(client, run_id, "train", tmp_path / "train.h5", digest)

        with ThreadPoolExecutor(len(run_ids)) as pool:
            list(pool.map(record, run_ids))  # re-raises the first failure
        for run_id in run_ids:
            inputs = client.get_run(run_id).inputs.dataset_inputs
            assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("train", digest)]
