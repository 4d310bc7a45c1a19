"""Debian's PostgreSQL as a private cluster in a folder: TCP on 127.0.0.1 only, its socket in the
folder, password (scram) authentication. The team stack and the test suite both start it so.

Debian keeps the server binaries off PATH (one ``bin/`` per major version); ``initdb`` refuses to
run as root, so as root the cluster belongs to Debian's ``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

POSTGRES_ROOT = Path("/usr/lib/postgresql")


class PostgresError(RuntimeError):
    """A PostgreSQL tool failed; the message's first line names it and its first line of output,
    the rest holds the command, all its output and the server log."""


def bindir() -> Path | None:
    """bin/ of the newest installed PostgreSQL server, or None."""
    dirs = [initdb.parent for initdb in POSTGRES_ROOT.glob("*/bin/initdb")]
    return max(dirs, key=lambda b: [int(n) for n in b.parent.name.split(".")], default=None)


def _owner() -> pwd.struct_passwd | None:
    """Debian's ``postgres`` user when running as root (KeyError if there is none), else None."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


@dataclass(frozen=True)
class Cluster:
    """A cluster in ``root`` (data/, server.log, the socket) listening on 127.0.0.1:``port``."""

    root: Path
    port: int
    password: str  # of the superuser `postgres`

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def uri(self, database: str) -> str:
        """SQLAlchemy URI naming the psycopg2 driver (SQLAlchemy 2.1 maps a bare
        `postgresql://` to psycopg 3, which is not in the lock)."""
        return f"postgresql+psycopg2://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        try:
            result = subprocess.run(cmd, text=True, capture_output=True, env=env)
        except FileNotFoundError as e:  # runuser (util-linux) or a PostgreSQL tool
            raise PostgresError(f"{e.filename}: not found") from None
        if result.returncode != 0:
            tool = Path(next(c for c in cmd if c.startswith("/"))).name
            output = (result.stderr + result.stdout).strip() or "no output"
            log = self.log.read_text() if self.log.exists() else ""
            raise PostgresError(
                f"{tool} failed ({result.returncode}): {output.splitlines()[0]}\n{cmd}\n"
                f"{output}\n{log}"
            )

    def _tool(self, name: str) -> list[str]:
        found = bindir()
        if found is None:
            raise PostgresError(f"no PostgreSQL server under {POSTGRES_ROOT}/*/bin")
        as_owner = ["runuser", "-u", "postgres", "--"] if _owner() else []
        return [*as_owner, str(found / name)]

    def init(self) -> None:
        """Create the cluster (once: a folder that holds one is kept)."""
        if (self.data / "PG_VERSION").is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password)
        owner = _owner()
        if owner:
            for path in (self.root, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        try:
            initdb = [*self._tool("initdb"), f"--pgdata={self.data}", "--username=postgres"]
            self._run([*initdb, "--auth=scram-sha-256", f"--pwfile={pwfile}", "--locale=C.UTF-8"])
        finally:
            pwfile.unlink()

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root}"  # TCP on loopback; socket here
        pg_ctl = [*self._tool("pg_ctl"), f"--pgdata={self.data}", "--wait"]
        self._run([*pg_ctl, f"--log={self.log}", f"--options={options}", "start"])

    def stop(self) -> None:
        self._run([*self._tool("pg_ctl"), f"--pgdata={self.data}", "--wait", "--mode=fast", "stop"])

    def running(self) -> bool:
        return (self.data / "postmaster.pid").is_file()

    def _client(self, name: str) -> list[str]:
        """A client tool (psql, pg_dump, ...) as this user, over TCP (the login: `_client_env`);
        its files belong to whoever runs it."""
        return [str(bindir() / name), "-h", "127.0.0.1", "-p", str(self.port)]

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, "PGUSER": "postgres", "PGPASSWORD": self.password}

    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"
        psql = [*self._client("psql"), "-tAc", query, "postgres"]
        found = subprocess.run(psql, text=True, capture_output=True, env=self._client_env())
        if found.stdout.strip() != "1":
            self._run([*self._client("createdb"), name], env=self._client_env())

    def dump(self, database: str, path: Path) -> None:
        """``pg_dump`` of ``database`` in the custom format (what ``pg_restore`` reads)."""
        dump = [*self._client("pg_dump"), "--format=custom", f"--file={path}", database]
        self._run(dump, env=self._client_env())

    def restore(self, database: str, path: Path) -> None:
        """Replace ``database`` with a dump of it. The dump goes into a scratch database first,
        so a restore that fails (a bad file, a full disk) leaves ``database`` as it was; nothing
        may be connected to it (stop its server first)."""
        env, scratch = self._client_env(), f"{database}_restoring"
        self._run([*self._client("dropdb"), "--if-exists", scratch], env=env)
        self._run([*self._client("createdb"), scratch], env=env)
        restore = [*self._client("pg_restore"), "--no-owner", "--exit-on-error", "-d", scratch]
        self._run([*restore, str(path)], env=env)
        self._run([*self._client("dropdb"), "--if-exists", database], env=env)
        rename = f'ALTER DATABASE "{scratch}" RENAME TO "{database}"'
        self._run([*self._client("psql"), "-qc", rename, "postgres"], env=env)
