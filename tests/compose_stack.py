"""The team stack as compose.yaml runs it, on the tests' private Docker engine.

Without an image registry, deploy/compose.local.yaml supplies local stand-ins for the upstream
images and puts every service on the host's loopback, on compose.yaml's ports. A `Stack` (the
one-machine stack's class) holds the secrets, SeaweedFS's identities and the clients' view of it
(URLs, per-account environment), so the team tests' helpers work on it unchanged.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from pathlib import Path

from docker_engine import Engine
from e2e import BIN, REPO

from pipeline.team.accounts import ensure_users
from pipeline.team.services import StackError, check_ports_free
from pipeline.team.stack import DEFAULT_PORTS, Stack

FILES = ("-f", "compose.yaml", "-f", "deploy/compose.local.yaml")
# compose.yaml's ports, and the ones `weed mini` takes on the host's network (HTTP, gRPC).
PORTS = {"postgres": 5432, "mlflow": 5000, "s3": 8333, "s3-grpc": 18333}
PORTS |= {f"weed-{p}": p for p in (8888, 9333, 9340, 18888, 19333, 19340, 23646, 33646)}


class ComposeStack:
    """`docker compose` on compose.yaml + the local override, with a fresh Stack's secrets in
    its environment (never in a file of the project)."""

    def __init__(self, engine: Engine, root: Path) -> None:
        self.stack = Stack(root, {**DEFAULT_PORTS, "mlflow": PORTS["mlflow"], "s3": PORTS["s3"]})
        self.stack.admin_password = secrets.token_urlsafe(18)
        self.stack.write_config()
        s3 = self.stack.secrets["s3"]
        self.env = {
            **engine.env,
            "POSTGRES_PASSWORD": self.stack.secrets["postgres"],
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.stack.admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.stack.secrets["flask"],
            "S3_ADMIN_ACCESS_KEY": s3["admin"][0],
            "S3_ADMIN_SECRET_KEY": s3["admin"][1],
            "S3_MLFLOW_ACCESS_KEY": s3["mlflow"][0],
            "S3_MLFLOW_SECRET_KEY": s3["mlflow"][1],
            "S3_CONFIG_FILE": str(root / "s3.json"),
            "MLFLOW_ALLOWED_HOSTS": "localhost:5000",
            "S3_PUBLIC_URL": self.stack.s3_url,  # the host's loopback: clients and server
        }
        self.files = list(FILES)  # more `-f FILE` for another override

    def compose(
        self, *args: str, check: bool = True, stdin: Path | None = None, stdout: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose` on ``self.files``; ``stdin`` / ``stdout``: files to read, write."""
        cmd = [str(BIN / "docker-compose"), *self.files, *args]
        with contextlib.ExitStack() as files:
            source = files.enter_context(stdin.open("rb")) if stdin else None
            sink = files.enter_context(stdout.open("wb")) if stdout else subprocess.PIPE
            result = subprocess.run(
                cmd, cwd=REPO, env=self.env, stdin=source, stdout=sink, stderr=subprocess.PIPE
            )
        out, err = (result.stdout or b"").decode(errors="replace"), result.stderr.decode()
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {args} failed:\n{out}{err}")
        return subprocess.CompletedProcess(cmd, result.returncode, out, err)

    def up(self) -> None:
        """`up -d --wait` (every service healthy, the buckets made), then the `ci` and `reader`
        accounts."""
        self.compose("up", "-d", "--wait")
        ensure_users(self.stack.mlflow_url, self.stack.admin_password, self.stack.secrets["mlflow"])

    # docs/team.md's backup and rollback, as a team runs them on its stack.
    def schema(self) -> str:
        """The alembic revision of MLflow's database."""
        query = ["psql", "-U", "mlflow", "-tAc", "SELECT version_num FROM alembic_version"]
        return self.compose("exec", "-T", "postgres", *query, "mlflow").stdout.strip()

    def backup(self, database: str, dump: Path) -> None:
        self.compose(
            "exec", "-T", "postgres", "pg_dump", "-U", "mlflow", "-Fc", database, stdout=dump
        )

    def restore(self, database: str, dump: Path) -> None:
        """Replace ``database`` with ``dump`` (the MLflow server stopped)."""
        self.compose("exec", "-T", "postgres", "dropdb", "-U", "mlflow", database)
        self.compose("exec", "-T", "postgres", "createdb", "-U", "mlflow", database)
        restore = ["pg_restore", "-U", "mlflow", "--no-owner", "--exit-on-error", "-d", database]
        self.compose("exec", "-T", "postgres", *restore, stdin=dump)


def ports_taken() -> str | None:
    """Why the stack cannot start on this host's loopback now, or None."""
    try:
        check_ports_free(PORTS)
    except StackError as exc:  # it names the port and how to find what holds it
        return str(exc)
    return None
