"""Start and stop the stack's long-running processes (SeaweedFS, MLflow) as detached process
groups whose ids live in pid files, so that `team down` in another shell can end them.

Errors that a user can fix (a port taken, a binary missing, a service that would not start) are
`StackError`s whose one-line message names the service, the log and what to do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

GRPC_OFFSET = 10000  # SeaweedFS serves gRPC on each HTTP port + 10000


class StackError(RuntimeError):
    """An expected failure of the team stack; the message is one line that says what to do."""


def binary(name: str, install: str) -> str:
    """Path of ``name``: the venv's own first (pip wheels install there), then PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` not found: {install}")
    return found


def check_ports_free(ports: Mapping[str, int]) -> None:
    """Raise naming the first port on 127.0.0.1 that something else listens on."""
    for what, port in ports.items():
        with socket.socket() as sock:
            # As the servers do: a port whose last connections linger in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise StackError(
                    f"port {port} on 127.0.0.1 is taken ({what}): stop what listens there "
                    f"(`ss -ltnp 'sport = :{port}'`) or choose another port "
                    f"(FCRN_TEAM_PORTS, docs/team.md)"
                ) from None


def _exists(probe: Callable[[], None]) -> bool:
    """Whether signal 0 (``probe``) finds the process or group; another user's counts."""
    try:
        probe()
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    return _exists(lambda: os.kill(pid, 0))


class Service:
    """One detached process group, its log and its pid file under ``run_dir``."""

    def __init__(self, name: str, cmd: list[str], env: Mapping[str, str], run_dir: Path) -> None:
        self.name, self.cmd, self.env = name, cmd, dict(env)
        self.pid_file = run_dir / f"{name}.pid"
        self.log = run_dir.parent / "logs" / f"{name}.log"

    def pid(self) -> int | None:
        """The running group's pid, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        if pid_alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Start detached, then wait until ``ready()``; stop it and raise if it never is."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: `stop` ends its children too
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout_s
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                what = "exited" if proc.poll() is not None else f"did not answer in {timeout_s:g} s"
                self.stop()
                raise StackError(f"{self.name} {what} during start-up: see {self.log}")
            time.sleep(0.5)

    def stop(self, grace_s: float = 20) -> None:
        """SIGTERM the group, SIGKILL what is left after ``grace_s`` (SeaweedFS can take 40 s)."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _group_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.2)
        _kill_group(pid)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the group at once: what a crashed service looks like to its clients."""
        pid = self.pid()
        if pid is not None:
            _kill_group(pid)
            self.pid_file.unlink(missing_ok=True)


def _kill_group(pid: int) -> None:
    """SIGKILL a process group and wait until none of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    while _group_alive(pid):
        _reap(pid)
        time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect our own child's exit status, so that it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _group_alive(pgid: int) -> bool:
    if not _exists(lambda: os.killpg(pgid, 0)):
        return False
    # A zombie leader keeps the group "alive" until reaped; it no longer serves anything.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pgid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" or _has_members(pgid)
    return True


def _has_members(pgid: int) -> bool:
    """Whether any live process other than a zombie leader is in group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def http_answers(url: str, ok: tuple[int, ...] = ()) -> bool:
    """Whether ``url`` answers at all (or with one of ``ok``)."""
    import requests

    try:
        status = requests.get(url, timeout=3).status_code
    except requests.RequestException:
        return False
    return not ok or status in ok
