"""A private Docker engine for the tests: its own dockerd, data, state and socket in one folder.

Nothing is shared with a Docker the machine may run: the engine has no bridge network (no
`docker0`, no iptables rules: containers use the host's network or none) and stops, unmounted
and deleted, at the end. `unavailable()` says why one cannot start here, for the tests to skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

# Debian's docker.io client: it has BuildKit built in (a Docker 23+ client needs the buildx plugin
# for it), which the image's CA secret needs.
CLIENT = Path(os.environ.get("FCRN_TEST_DOCKER", "/usr/bin/docker"))
# The Docker tests' measured peak, 11.2 GB (the 7.4 GB image, pip's downloads and BuildKit's
# working copies while it builds, the air-gapped base, the team stack's images and volumes, the
# image with the older MLflow, the clones), plus a margin.
DISK_NEEDED_GB = 14


def unavailable(root: Path) -> str | None:
    """Why no private engine can run here, or None."""
    if shutil.which("dockerd") is None or not CLIENT.exists():
        return f"no dockerd or no {CLIENT} (apt-get install docker.io; .ci/run does)"
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    free_gb = shutil.disk_usage(root).free / 1e9
    if free_gb < DISK_NEEDED_GB:
        return f"the Docker tests need {DISK_NEEDED_GB} GB free in {root}; it has {free_gb:.1f} GB"
    return None


class Engine:
    """dockerd with everything under ``root``; `docker` runs its client against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.exec_root = root / "exec"  # short: the unix sockets under it have a 108-byte limit
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{root / 'docker.sock'}"}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start dockerd and wait until it answers; RuntimeError with its log's end if not."""
        cmd = [
            "dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.exec_root),
            "--host", self.env["DOCKER_HOST"], "--pidfile", str(self.root / "dockerd.pid"),
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
        ]  # fmt: skip
        with (self.root / "dockerd.log").open("wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.docker("version", check=False).returncode != 0:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.root / "dockerd.log").read_text(errors="replace").splitlines()[-3:]
                raise RuntimeError(f"dockerd did not start: {' / '.join(tail)}")
            time.sleep(0.5)

    def docker(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(CLIENT), *args], env=self.env, text=True, capture_output=True, input=input
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {args} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def stop(self) -> None:
        """Stop dockerd (its containerd goes with it), then remove everything it made. dockerd
        leaves ``exec/netns/default`` mounted: unmounted first, or the folder cannot go."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        netns = self.exec_root / "netns/default"
        if netns.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                subprocess.run(["umount", str(netns)], check=True, capture_output=True)
        shutil.rmtree(self.root)
