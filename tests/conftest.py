"""Shared fixtures."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import torch
from e2e import (
    MLFLOW_ENV,
    SERVER_ENV,
    TINY,
    free_port,
    free_port_pair,
    make_project,
    run,
    stop_process_group,
)
from filelock import FileLock
from tiny_project import TinyProject

from pipeline.team import postgres
from pipeline.team.accounts import ensure_users
from pipeline.team.stack import DEFAULT_PORTS, Stack

# pytest-xdist's workers share the cores. Torch's default, a thread per core in every process
# (and in every subprocess a test starts), would put N times as many spinning OpenMP threads as
# cores on the machine, and they slow each other several times over: each worker gets its share.
if _workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = max(1, len(os.sched_getaffinity(0)) // int(_workers))
    os.environ.update(OMP_NUM_THREADS=str(_threads), MKL_NUM_THREADS=str(_threads))
    torch.set_num_threads(_threads)
    # Stages in portable mode (the default) re-execute with pipeline.portable.THREADS threads
    # whatever the share, since their bytes depend on it: waiting threads then sleep instead of
    # spinning on the cores of the other workers. The results do not depend on it.
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


# The modules that took longest (each 115-350 s of one worker under `make test`; test_docker.py
# builds a 7 GB image), longest first.
LONGEST_MODULES = (
    "test_docker.py",
    "test_train_e2e.py",
    "test_team_faults.py",
    "test_faults.py",
    "test_team_stack.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first, then the other modules with end-to-end (`slow`) tests, then
    the rest (a stable sort). `make test` hands the workers whole modules (`--dist loadscope`:
    a module's fixtures are made once), so a long module left for last runs alone while the
    other workers idle; quick modules at the end fill the gaps instead."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        longest = LONGEST_MODULES.index(name) if name in LONGEST_MODULES else len(LONGEST_MODULES)
        return longest, item.path not in slow

    items.sort(key=rank)


# --- PostgreSQL: a throwaway server for MLflow's SQL backend store ------------------------------


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """SQLAlchemy URI of a fresh database on a throwaway PostgreSQL cluster on 127.0.0.1.

    The cluster (`pipeline.team.postgres`: data, unix socket and log in one folder, password
    authentication) lives in a temporary directory and is stopped and deleted at the end of the
    session.
    """
    if postgres.bindir() is None:
        pytest.skip(
            f"no PostgreSQL server under {postgres.POSTGRES_ROOT}/*/bin "
            "(apt-get install postgresql; .ci/run does)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to own the cluster")
    # Not pytest's tmp_path: its base directory is private (0700) to the user running pytest.
    root = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    cluster = postgres.Cluster(root, free_port(), secrets.token_hex(16))
    try:
        cluster.init()
        cluster.start()
        try:
            cluster.create_database("mlflow")
            yield cluster.uri("mlflow")
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root)


# --- MLflow: a real tracking server for the tracking, registry, predict and UI tests ------------


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with its own backend store and proxied artifact folder.

    `stop` and `start` keep the port, store and artifacts: a restarted server is the same
    tracking URI to its clients (what a server outage looks like).
    """

    def __init__(self, backend_store_uri: str, root: Path) -> None:
        self.backend_store_uri = backend_store_uri
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", str(self.root / "artifacts"),
        ]  # fmt: skip
        log_path = self.root / "server.log"
        with log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.root,
                env={**os.environ, **SERVER_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: `stop` ends its children too
            )
        deadline = time.monotonic() + 180  # ~12 s alone; much more on a busy 2-core machine
        while True:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"mlflow server did not answer /health:\n{log_path.read_text()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL what is left after 30 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process_group(proc)


@pytest.fixture(scope="session")
def mlflow_backend_store_uri(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The backend store of the shared test server.

    ``FCRN_TEST_POSTGRES_URI`` if set; else PostgreSQL from the `postgres_uri` fixture when it
    can start one; else SQLite in a temp folder. ``FCRN_TEST_MLFLOW_BACKEND=sqlite`` (or
    ``postgresql``) forces the choice. Tests use their own experiment and model names, so a
    database that outlives the session does no harm.
    """
    choice = os.environ.get("FCRN_TEST_MLFLOW_BACKEND", "auto")
    if choice not in ("auto", "sqlite", "postgresql"):
        raise ValueError(f"FCRN_TEST_MLFLOW_BACKEND={choice!r}: expected sqlite or postgresql")
    if choice != "sqlite":
        if uri := os.environ.get("FCRN_TEST_POSTGRES_URI"):
            return uri
        try:
            return request.getfixturevalue("postgres_uri")
        except (pytest.FixtureLookupError, pytest.skip.Exception):
            if choice == "postgresql":
                raise
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-store') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def mlflow_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], MlflowServer]]:
    """Start MLflow servers on a given backend store; all are stopped at the end."""
    servers: list[MlflowServer] = []

    def start(backend_store_uri: str) -> MlflowServer:
        server = MlflowServer(backend_store_uri, tmp_path_factory.mktemp("mlflow-server"))
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(
    mlflow_server_factory: Callable[[str], MlflowServer], mlflow_backend_store_uri: str
) -> MlflowServer:
    """The session's shared `mlflow server`."""
    return mlflow_server_factory(mlflow_backend_store_uri)


@pytest.fixture(autouse=True)
def _reset_mlflow_tracking_uri() -> Iterator[None]:
    """`pipeline.tracking.connect` sets MLflow's process-wide tracking URI (and with it
    MLFLOW_TRACKING_URI): put both back after each test, so no test talks to another's server."""
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:  # never import it for tests that did not
        sys.modules["mlflow"].set_tracking_uri(None)
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved


@pytest.fixture
def mlflow_env(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point this test (and the subprocesses it starts with ``os.environ``) at the server."""
    env = {**MLFLOW_ENV, "MLFLOW_TRACKING_URI": mlflow_server.url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="module")
def tiny_project(module_tmp: Callable[[str], Path]) -> Callable[..., TinyProject]:
    """Make `TinyProject`s (a new folder each, deleted with the module's)."""

    def make(name: str, changes: dict[str, object] | None = None) -> TinyProject:
        return TinyProject(module_tmp(name), name, changes)

    return make


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The tiny project (`e2e.TINY`) after `dvc repro` on its own SQLite store, outputs and
    dvc.lock committed; made once per run: under pytest-xdist the first worker that needs it
    makes it in the run's shared temp folder while the others wait. Tests `git clone` it or
    take a `copy_project` of it; none changes it."""
    base = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        base = base.parent  # pytest-xdist: each worker's temp folder sits in the run's
    root, done = base / "reproduced" / "project", base / "reproduced.done"
    with FileLock(base / "reproduced.lock"):
        if done.exists():
            return root
        shutil.rmtree(root.parent, ignore_errors=True)  # what a failed attempt left
        make_project(root, TINY)
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default: mlflow.db in it
            run(["dvc", "repro"], root)
        run(["git", "add", "-A"], root)
        run(["git", "commit", "-qm", "outputs of dvc repro"], root)
        done.touch()
    return root


# --- The team stack: PostgreSQL, SeaweedFS S3 and basic-auth MLflow (one per session) ----------


@pytest.fixture(scope="session")
def team_stack() -> Iterator[Stack]:
    """`python -m pipeline.team up`'s stack in a temporary folder on free ports, with the
    ``ci`` and ``reader`` accounts; ``stack.admin_password`` is the admin's. One per pytest-xdist
    worker: the faults some tests inject (a killed object store, a restarted server) hit only
    the tests of their own worker, which run one at a time."""
    if postgres.bindir() is None:
        pytest.skip("no PostgreSQL server (apt-get install postgresql; .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="pytest-team-"))
    root.chmod(0o755)  # as root, the cluster's owner `postgres` must reach root/postgres
    ports = {name: free_port_pair() for name in DEFAULT_PORTS}
    stack = Stack(root, ports)
    stack.admin_password = secrets.token_urlsafe(18)
    try:
        stack.up(stack.admin_password)
        ensure_users(stack.mlflow_url, stack.admin_password, stack.secrets["mlflow"])
        yield stack
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


# --- Disk: module folders go when their module ends -----------------------------------------------


@pytest.fixture(scope="module")
def module_tmp(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Path]]:
    """`tmp_path_factory.mktemp` for one module's fixtures; the folders are deleted when the
    module ends unless one of its tests failed. A full run makes dozens of models and checkpoints:
    kept to the session's end they needed ~25 GB of disk."""
    made: list[Path] = []
    failed_before = request.session.testsfailed

    def mktemp(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield mktemp
    if request.session.testsfailed == failed_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
