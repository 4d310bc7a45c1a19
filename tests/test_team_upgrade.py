"""A team's move from MLflow 3.17.2 to the lock's MLflow and back, on a real stack (PostgreSQL,
SeaweedFS S3, the basic-auth server): CI registers `@champion` under 3.17.2; with the lock's
MLflow, `team up` refuses to start a server that would migrate the database; `team upgrade`
backs it up and migrates it; the champion loads and the accounts hold; the old MLflow refuses
the migrated database and `team restore` brings the backup back for it; a damaged backup's
restore fails with one line and changes nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e import free_port_pair
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from PIL import Image
from test_team_stack import account
from tiny_project import TinyProject

from pipeline.io import md5sum
from pipeline.team.stack import DEFAULT_PORTS, Stack
from pipeline.team.upgrade import installed_mlflow, read_schema

pytestmark = pytest.mark.slow
OLD = "3.17.2"
OLD_SCHEMA = "dc11669786a5"  # MLflow 3.17.2's newest migration
ADMIN_PASSWORD = "an-admin-password-for-the-test"
FCRN_PREDICT = str(Path(sys.executable).parent / "fcrn-predict")


@pytest.fixture(scope="module")
def old_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MLflow 3.17.2's three packages in a folder of their own: put first on PYTHONPATH, they
    are the `mlflow` that the server, `register` and `fcrn-predict` import (the rest of the
    venv serves both releases)."""
    target = tmp_path_factory.mktemp("mlflow-old")
    packages = [f"{name}=={OLD}" for name in ("mlflow", "mlflow-skinny", "mlflow-tracing")]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
    subprocess.run([*pip, str(target), *packages], check=True)
    return target


@pytest.fixture
def stack_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pytest-upgrade-"))
    root.chmod(0o755)  # as root, the cluster's owner `postgres` must reach root/team/postgres
    yield root / "team"
    shutil.rmtree(root, ignore_errors=True)


def team_cli(root: Path, ports: dict[str, int], cwd: Path, old: Path | None) -> Callable:
    """`python -m pipeline.team ARGS` on the stack in ``root``, with MLflow ``old`` when given."""
    env = {
        **os.environ,
        "FCRN_TEAM_DIR": str(root),
        "FCRN_TEAM_PORTS": ",".join(f"{k}={v}" for k, v in ports.items()),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }

    def team(*args: str, mlflow: Path | None = old) -> subprocess.CompletedProcess[str]:
        full = {**env, "PYTHONPATH": str(mlflow)} if mlflow else env
        cmd = [sys.executable, "-m", "pipeline.team", *args]
        return subprocess.run(cmd, env=full, cwd=cwd, text=True, capture_output=True)

    return team


def predict_champion(project: TinyProject, old: Path | None) -> Path:
    """`fcrn-predict --model models:/...@champion` as the client running it; the depth map."""
    image, out = project.root / "room.png", project.root / "depth"
    Image.new("RGB", (64, 48), "teal").save(image)
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(old)} if old else None
    model = f"models:/{project.model_name}@champion"
    cmd = [FCRN_PREDICT, str(image), "--out", str(out), "--model", model]
    result = subprocess.run(cmd, env=env, cwd=project.root, text=True, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "room.png"


def champion_holds(
    stack: Stack, project: TinyProject, version: str, model_md5: str, old: Path | None = None
) -> None:
    """As `reader`: @champion is ``version`` (of the model with ``model_md5``), `fcrn-predict`
    loads it (with MLflow ``old`` when given), and moving the alias is refused (HTTP 403)."""
    with account(stack, "reader"):
        client = MlflowClient(stack.mlflow_url)
        champion = client.get_model_version_by_alias(project.model_name, "champion")
        assert (champion.version, champion.tags["model_md5"]) == (version, model_md5)
        assert predict_champion(project, old).is_file()
        with pytest.raises(MlflowException) as denied:
            client.set_registered_model_alias(project.model_name, "champion", version)
    assert denied.value.get_http_status_code() == 403


def test_the_team_upgrades_mlflow_and_rolls_back(
    old_mlflow: Path, stack_root: Path, tiny_project: Callable[..., TinyProject]
) -> None:
    project = tiny_project("upgrade")
    ports = {name: free_port_pair() for name in DEFAULT_PORTS}
    team = team_cli(stack_root, ports, project.root, old_mlflow)
    try:
        # The team on MLflow 3.17.2: the stack, and CI registers its model as the champion.
        assert team("up").returncode == 0, team("up").stderr
        stack = Stack(stack_root, ports)
        uri = stack.postgres.uri("mlflow")
        assert read_schema(uri).current == OLD_SCHEMA
        with account(stack, "ci"), pytest.MonkeyPatch.context() as mp:
            mp.setenv("PYTHONPATH", str(old_mlflow))
            project.write_model(out_bias=0.1)
            assert project.register()["decision"] == "champion"
        model_md5 = md5sum(project.model)

        # The venv moves to the lock's MLflow: `up` will not let its server migrate the database.
        assert team("down").returncode == 0
        refused = team("up", mlflow=None)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.strip().splitlines() == [
            f"error: MLflow's database in {stack.postgres.data} (revision {OLD_SCHEMA}, from "
            f"MLflow {OLD}) is older than MLflow {installed_mlflow()}'s schema "
            f"({read_schema(uri).head}), and a server would migrate it one way at start-up: "
            "run `python -m pipeline.team upgrade` (it backs the database up first; "
            "docs/team.md)"
        ]
        assert read_schema(uri).current == OLD_SCHEMA

        # The upgrade: a backup of both databases, then the migration.
        upgraded = team("upgrade", mlflow=None)
        assert upgraded.returncode == 0, upgraded.stderr
        backup = Path(re.search(r"backed up to (\S+);", upgraded.stdout)[1])
        assert sorted(p.name for p in backup.iterdir()) == [
            "backup.json", "mlflow.dump", "mlflow_auth.dump"
        ]  # fmt: skip
        assert backup.stat().st_mode & 0o077 == 0  # password hashes: its owner's only
        assert read_schema(uri).current == read_schema(uri).head
        assert team("upgrade", mlflow=None).stdout.startswith("MLflow's database already has")

        # The lock's MLflow serves it: the champion loads, and the accounts hold.
        assert team("up", mlflow=None).returncode == 0
        champion_holds(stack, project, "1", model_md5)
        with account(stack, "ci"):
            project.write_model(out_bias=0.2)
            project.write_metrics(0.1)  # better than v1's 0.2: v2 becomes the champion
            registered = project.register()
            assert (registered["version"], registered["decision"]) == (2, "champion")
        with account(stack, "reader"), pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
            with pytest.raises(MlflowException) as wrong:
                MlflowClient(stack.mlflow_url).get_registered_model(project.model_name)
            assert wrong.value.get_http_status_code() == 401

        # Rolling back: 3.17.2 refuses the migrated database; the backup brings back its own.
        assert team("down").returncode == 0
        refused = team("up")
        assert refused.returncode == 1
        assert f"is newer than MLflow {OLD} knows" in refused.stderr
        assert f"python -m pipeline.team restore {backup}`" in refused.stderr
        restored = team("restore", str(backup))
        assert restored.returncode == 0, restored.stderr
        assert f"MLflow {OLD}" in restored.stdout
        assert read_schema(uri).current == OLD_SCHEMA
        assert team("up").returncode == 0
        champion_holds(stack, project, "1", model_md5, old_mlflow)  # v2 came after the backup

        # A restore that fails leaves the databases as they were; a folder that is no backup.
        damaged = stack_root.parent / "damaged-backup"
        shutil.copytree(backup, damaged)
        (damaged / "mlflow.dump").write_bytes(b"not a dump")
        failed = team("restore", str(damaged))
        assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1
        assert failed.stderr.startswith(f"error: restoring {damaged} failed: pg_restore failed")
        assert team("up").returncode == 0
        with account(stack, "reader"):
            client = MlflowClient(stack.mlflow_url)
            assert client.get_model_version_by_alias(project.model_name, "champion").version == "1"
        refused = team("restore", str(stack_root))
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"error: {stack_root} is not a backup of the team stack")
    finally:
        team("down")
