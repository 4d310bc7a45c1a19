"""Helpers for end-to-end tests: a real git + DVC copy of the project, real subprocesses."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import requests
import yaml

from pipeline.params_file import set_params
from pipeline.team.stack import MLFLOW_SERVER_ENV

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's console scripts (fcrn-*, mlflow, dvc, linters)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A free port P in 20000-29999 whose P + 10000 is free too (SeaweedFS's gRPC ports)."""
    for port in random.sample(range(20000, 30000), 500):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def closed_url(path: str = "") -> str:
    """An http URL on 127.0.0.1 where nobody listens: a real, fast connection refusal."""
    return f"http://127.0.0.1:{free_port()}{path}"


def write_h5(path: Path, attrs: dict[str, object] | None = None, **arrays: np.ndarray) -> Path:
    """A processed split as the preprocess stage lays it out (``rgb``, ``depth``, ``index``,
    ``depth_full`` for test; attrs ``split``, ``resize_hw``, ``crop_hw``), from given arrays."""
    with h5py.File(path, "w") as h5:
        for name, array in arrays.items():
            h5[name] = array
        h5.attrs.update(attrs or {})
    return path


MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}  # no telemetry
SERVER_ENV = {**MLFLOW_ENV, **MLFLOW_SERVER_ENV}  # `mlflow server` as the team stack runs it

PROJECT_FILES = ["pipeline", "stages", "dvc.yaml", "params.yaml", "pyproject.toml"]

# A configuration that runs every stage in seconds: 8 rooms, 32x40 crops, 2 short epochs.
TINY = {
    "data.synthetic.num_images": 8,
    "data.synthetic.test_fraction": 0.25,
    "data.preprocess.resize_hw": [34, 44],
    "data.preprocess.crop_hw": [32, 40],
    "model.encoder": "resnet18",  # a 55 MB model, not 255: the tests' time is in its bytes
    "train.epochs": 2,
    "train.batch_size": 2,
    "train.workers": 0,
    "eval.num_examples": 2,
    "mlflow.onnx": False,  # the ONNX export takes a minute; tests/test_onnx.py checks it
}


def stage_argv(stage: str) -> tuple[str, ...]:
    """``stage``'s command in dvc.yaml, its ``${paths.*}`` filled in, without the leading
    ``python``: the script and its arguments, relative to the project. Tests that run a stage
    script directly run what DVC runs."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    paths = next(v["paths"] for v in pipeline["vars"] if "paths" in v)
    cmd = re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m[1]], pipeline["stages"][stage]["cmd"])
    python, *argv = shlex.split(cmd)
    assert python == "python", cmd
    return tuple(argv)


def env() -> dict[str, str]:
    """The environment `make` gives stages: this interpreter's bin first, no telemetry."""
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"
    e.update(DVC_NO_ANALYTICS="1", **MLFLOW_ENV)
    return e


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env(), text=True, capture_output=True)
    if check and result.returncode != 0:
        output = f"{result.stdout}\n{result.stderr}"
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{output}")
    return result


@contextmanager
def edited_params(project: Path, changes: dict[str, object] | None = None) -> Iterator[None]:
    """Set dotted keys in the project's params.yaml for the block; restore the file afterwards
    (also undoing what a workspace `dvc exp run -S` wrote)."""
    path = project / "params.yaml"
    original = path.read_text()
    set_params(path, changes or {})
    try:
        yield
    finally:
        path.write_text(original)


def make_project(root: Path, changes: dict[str, object]) -> Path:
    """A fresh git + DVC repo at ``root`` holding a copy of the project with ``changes``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src, dst = REPO / name, root / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    set_params(root / "params.yaml", changes)
    (root / ".gitignore").write_text(
        "/data/\n/models/\n/checkpoints/\nmlflow.db\nmlflow.db.lock\nmlruns/\n__pycache__/\n"
    )
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "ci@example.invalid"], root)
    run(["git", "config", "user.name", "ci"], root)
    run(["dvc", "init", "-q"], root)
    shutil.copy2(REPO / ".dvc/config", root / ".dvc/config")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "project"], root)
    return root


def copy_project(src: Path, dest: Path, changes: dict[str, object] | None = None) -> Path:
    """An independent copy of a reproduced project (git, DVC cache and outputs) without its
    MLflow store: the store records absolute artifact paths into ``src``. The copy's next
    `dvc repro` registers the model in a store of its own. ``changes`` (dotted keys) are set in
    its params.yaml and committed: a project that starts with the data stages done."""
    skip = shutil.ignore_patterns("mlflow.db*", "mlruns")
    shutil.copytree(src, dest, symlinks=True, ignore=skip)
    shutil.rmtree(dest / ".dvc/tmp", ignore_errors=True)  # DVC's locks and state of ``src``
    if changes:
        set_params(dest / "params.yaml", changes)
        run(["git", "commit", "-qam", "params"], dest)
    return dest


def run_queue(project: Path, names: list[str], jobs: int, timeout_s: float) -> dict[str, str]:
    """`dvc queue start -j jobs` on the queued experiments ``names``; wait until none is queued
    or running, stop the idle workers and return each experiment's log. Fails when one did not
    succeed, starting with what explains it: each failed task's log tail, then DVC's worker
    logs (a task that fails before its first stage has no log of its own)."""
    # The workers it starts in the background keep its stdout: do not wait for that to close.
    subprocess.run(
        ["dvc", "queue", "start", "-j", str(jobs)],
        cwd=project, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while True:
        status = _queue_status(project)
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(5)
    run(["dvc", "queue", "stop"], project)
    logs = {n: run(["dvc", "queue", "logs", n], project, check=False).stdout for n in names}
    failed = [line.split()[1] for line in status.splitlines() if line.endswith("Failed")]
    if failed or status.count("Success") != len(names):
        tails = [f"--- {n} failed; its log ends:\n{_tail(logs.get(n, ''))}" for n in failed]
        workers = sorted((project / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.out"))
        tails += [f"--- {w.name} ends:\n{_tail(w.read_text(errors='replace'))}" for w in workers]
        raise AssertionError("\n".join([*tails, status]))
    return logs


def _queue_status(project: Path, tries: int = 3) -> str:
    """`dvc queue status`, asked again when it read a task's info file while its worker was
    rewriting it: DVC rewrites that JSON file in place (`modify_json`), so a reader can find it
    empty ("unexpected error - Expecting value: line 1 column 1 (char 0)")."""
    for _ in range(tries):
        result = run(["dvc", "queue", "status"], project, check=False)
        if result.returncode == 0 or "Expecting value" not in result.stderr:
            break
        time.sleep(1)
    assert result.returncode == 0, f"dvc queue status failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM a server's process group (it has children); SIGKILL what is left after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def mlflow_serving(model_uri: str, log: Path) -> Iterator[str]:
    """`mlflow models serve` as the docs show it (tracking URI and login from the environment),
    answering /ping: yield its URL; its process group is ended afterwards."""
    port = free_port()
    cmd = [
        str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # It execs `uvicorn` by name: the venv's bin must be on PATH (as after activating it). It
    # leaves its download of the model in the temp folder: give it one that goes afterwards.
    with tempfile.TemporaryDirectory(prefix="mlflow-serve-") as tmp, log.open("wb") as f:
        full_env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "TMPDIR": tmp,
        }
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 240
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{url}/ping", timeout=5).status_code == 200:
                        break
                time.sleep(1)
            yield url
        finally:
            stop_process_group(proc)
