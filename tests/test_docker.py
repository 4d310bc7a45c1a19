"""The image, built and run for real on a private Docker engine (tests/docker_engine.py).

One image per run (`make image`, the air-gapped base from Debian's packages): the container's
`dvc repro` on a mounted clone gives the host's dvc.lock byte for byte, `fcrn-predict` runs in it,
what it writes into the mount belongs to the host user, a bad mount ends in one `error:` line,
the proxy's CA bundle is in no layer, and a one-line code change rebuilds the code layer only.
Then the team stack under Docker Compose (tests/compose_stack.py) from the same image: the CI
round trip through it, a killed container, and `down -v` leaving nothing; its move from an MLflow
3.17.2 server to the lock's MLflow and back (docs/team.md, "Upgrading MLflow"). Last, two containers
as two training nodes, one killed mid-run: the restarted pair ends with the uninterrupted bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from compose_stack import FILES, ComposeStack, ports_taken
from docker_engine import CLIENT, Engine, unavailable
from e2e import REPO, copy_project, free_port, run, stage_argv
from mlflow import MlflowClient
from PIL import Image
from test_team_stack import LR, account, as_stage, lock_outs, retrain_as_ci, team_project
from test_team_upgrade import OLD, OLD_SCHEMA, champion_holds
from tiny_project import TinyProject

from pipeline.io import md5sum
from pipeline.team.accounts import provision
from tools.check_lock import export

pytestmark = pytest.mark.slow

UID = 1000  # the image's user and the mounted clone's owner: not root, as on a workstation
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A private dockerd for the session, or a skip saying why none can start here."""
    root = Path(tempfile.mkdtemp(prefix="pytest-docker-"))
    if reason := unavailable(root):
        shutil.rmtree(root)
        pytest.skip(reason)
    engine = Engine(root)
    try:
        engine.start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield engine
    finally:
        engine.stop()


def build(engine: Engine, context: Path, image: str) -> subprocess.CompletedProcess[str]:
    """`make image` in ``context`` as the README says, for UID 1000; fails with its output."""
    cmd = ["make", "image", f"DOCKER={CLIENT}", f"IMAGE={image}", f"IMAGE_UID={UID}"]
    result = subprocess.run(cmd, cwd=context, env=engine.env, text=True, capture_output=True)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"[-5000:]
    return result


@pytest.fixture(scope="session")
def image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`fcrn-depth` built from this working tree's tracked files, once per session."""
    context = tmp_path_factory.mktemp("image-context")
    export(REPO, context, "worktree")
    build(engine, context, "fcrn-depth")
    return "fcrn-depth"


def docker_run(
    engine: Engine, image: str, *cmd: str, mount: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The image's command, on a checkout mounted at /app if given, with no network, sharing
    the cores as conftest.py has every process of this pytest-xdist worker share them (the
    portable stages pin their own thread count: the bytes do not depend on these)."""
    options = [
        f"--env={name}" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
    ]
    options += ["--volume", mount] if mount else []
    return engine.docker("run", "--rm", "--network", "none", *options, image, *cmd, check=False)


def owned_by_others(root: Path) -> list[str]:
    return [str(p) for p in [root, *root.rglob("*")] if p.lstat().st_uid != UID]


@pytest.fixture(scope="module")
def repro_in_container(
    engine: Engine, image: str, reproduced: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A fresh clone of the reproduced tiny project, owned by UID 1000, and the container's
    `dvc repro --force` on it (every stage runs in the container)."""
    clone = tmp_path_factory.mktemp("docker") / "clone"
    run(["git", "clone", "-q", str(reproduced), str(clone)], clone.parent)
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(clone)], check=True)
    return clone, docker_run(engine, image, "dvc", "repro", "--force", mount=f"{clone}:/app")


def test_the_containers_dvc_repro_gives_the_hosts_dvc_lock(
    repro_in_container: tuple[Path, subprocess.CompletedProcess[str]], reproduced: Path
) -> None:
    clone, result = repro_in_container
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Running stage 'train'" in result.stdout
    assert (clone / "dvc.lock").read_bytes() == (reproduced / "dvc.lock").read_bytes()
    assert (clone / "models").is_dir()
    assert owned_by_others(clone) == []


def test_fcrn_predict_in_the_container(
    engine: Engine, image: str, repro_in_container: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    """The README's command; the model is the champion the container's `dvc repro` registered."""
    clone, repro = repro_in_container
    assert repro.returncode == 0, repro.stderr
    photos = clone / "photos"
    photos.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(photos / "room.png")
    os.chown(photos, UID, UID)
    predict = ["fcrn-predict", "photos/", "--out", "depth/"]
    result = docker_run(engine, image, *predict, mount=f"{clone}:/app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("1 depth maps in depth"), result.stdout
    with Image.open(clone / "depth/room.png") as depth:
        assert (depth.mode, depth.size) == ("I;16", (80, 60))
    assert owned_by_others(clone / "depth") == []


def test_a_bad_mount_ends_in_one_error_line(
    engine: Engine,
    image: str,
    repro_in_container: tuple[Path, subprocess.CompletedProcess[str]],
    reproduced: Path,
    tmp_path: Path,
) -> None:
    clone, _ = repro_in_container  # UID 1000's
    root_owned = tmp_path / "root-owned"
    shutil.copytree(reproduced, root_owned, symlinks=True)
    cases = {
        f"{clone}:/app:ro": "is not writable: mount the checkout read-write",
        f"{tmp_path / 'nowhere'}:/app": "has no dvc.yaml: mount a checkout of the project there",
        f"{root_owned}:/app": f"belongs to uid 0, this container runs as uid {UID}",
    }
    for mount, message in cases.items():
        result = docker_run(engine, image, "dvc", "repro", mount=mount)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
        assert result.stderr.startswith(f"error: /app {message}"), result.stderr
        assert result.stdout == ""


def test_the_images_own_copy_runs_dvc_without_git(engine: Engine, image: str) -> None:
    """`docker run fcrn-depth` with no mount: the image's copy holds no .git."""
    result = docker_run(engine, image, "dvc", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not in cache" in result.stdout  # the outputs: the image holds none


def test_the_build_ca_bundle_is_in_no_layer(engine: Engine, image: str) -> None:
    """The build trusted this machine's bundle (a BuildKit secret): no file of the image has its
    bytes, and no layer's command names its content."""
    size, digest = CA_BUNDLE.stat().st_size, hashlib.sha256(CA_BUNDLE.read_bytes()).hexdigest()
    found = engine.docker(
        "run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "find", image,
        "/", "-xdev", "-type", "f", "-size", f"{size}c", "-exec", "sha256sum", "{}", "+",
    )  # fmt: skip
    assert digest not in found.stdout
    history = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "PIP_CERT=/run/secrets/ca" in history  # the steps that had it
    assert "BEGIN CERTIFICATE" not in history


def test_a_code_change_rebuilds_only_the_code_layer(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    export(REPO, tmp_path, "worktree")
    with (tmp_path / "pipeline/stage.py").open("a") as f:
        f.write("# a one-line change\n")
    output = build(engine, tmp_path, "fcrn-depth:edited").stderr
    try:
        steps = dict(re.findall(r"^(#\d+) \[\s*\d+/\d+\] (.+)$", output, flags=re.MULTILINE))
        cached = set(re.findall(r"^(#\d+) CACHED$", output, flags=re.MULTILINE))
        assert len(steps) > 5, output
        ran = [name for step, name in steps.items() if step not in cached]
        assert [name for name in ran if not name.startswith("FROM ")] == [
            "COPY --chown=fcrn:fcrn . ."
        ], output
    finally:
        engine.docker("rmi", "fcrn-depth:edited")


@pytest.fixture(scope="module")
def compose(
    engine: Engine, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeStack]:
    """The team stack up (`docker compose up -d --wait`); `down -v` at the end."""
    if reason := ports_taken():
        pytest.skip(reason)
    stack = ComposeStack(engine, tmp_path_factory.mktemp("compose"))
    try:
        stack.up()
        yield stack
    finally:
        stack.compose("down", "-v", check=False)


def test_ci_and_a_reader_through_the_compose_stack(
    compose: ComposeStack, reproduced: Path, tmp_path: Path
) -> None:
    """CI retrains and registers as `ci` and pushes to S3; a reader's clone pulls and predicts
    with @champion; the reader may not move it; a container killed loses nothing."""
    stack = compose.stack
    runner = team_project(stack, tmp_path / "runner", "compose", LR, base=reproduced)
    log = retrain_as_ci(stack, runner, tmp_path)
    assert "Running stage 'train'" in log, log
    assert "pushed to the DVC remote" in (runner / "report.md").read_text()
    clone = tmp_path / "reader"
    run(["git", "clone", "-q", str(runner), str(clone)], tmp_path)
    Image.new("RGB", (80, 64), "teal").save(tmp_path / "room.png")
    predict = ["fcrn-predict", str(tmp_path / "room.png"), "--out", str(tmp_path / "depth")]
    predict += ["--model", "models:/fcrn-compose@champion"]
    # Every service killed (SIGKILL) and started again: the runs, the model, the accounts and
    # the pushed data are in the volumes.
    compose.compose("kill", "-s", "SIGKILL")
    compose.up()
    with account(stack, "reader"):
        run(["dvc", "pull"], clone)
        for path, md5 in lock_outs(clone).items():
            if (clone / path).is_file():
                assert md5sum(clone / path) == md5, path
        champion = MlflowClient(stack.mlflow_url).get_model_version_by_alias(
            "fcrn-compose", "champion"
        )
        assert champion.tags["model_md5"] == md5sum(clone / "models/fcrn.pt")
        run(predict, clone)
        move = "client.set_registered_model_alias('fcrn-compose', 'champion', '1')"
        moved = as_stage(move, clone)
    assert (tmp_path / "depth/room.png").is_file()
    assert moved.returncode == 1
    (line,) = [x for x in moved.stderr.splitlines() if x.strip()]
    assert line.startswith("error:") and "HTTP 403" in line and "user 'reader'" in line, line


def test_compose_down_leaves_nothing(compose: ComposeStack, engine: Engine) -> None:
    compose.compose("down", "-v")
    assert engine.docker("ps", "-aq").stdout == ""
    assert engine.docker("volume", "ls", "-q").stdout == ""
    networks = engine.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(networks) == ["host", "none"]


@pytest.fixture(scope="module")
def old_mlflow_image(engine: Engine, image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The pipeline's image with MLflow 3.17.2 in its venv: the team's server before the move."""
    context, tag = tmp_path_factory.mktemp("old-mlflow"), f"fcrn-mlflow:{OLD}"
    packages = " ".join(f"{p}=={OLD}" for p in ("mlflow", "mlflow-skinny", "mlflow-tracing"))
    (context / "Dockerfile").write_text(
        f"FROM {image}\nUSER root\nRUN --mount=type=secret,id=ca,target=/run/secrets/ca "
        "if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi "
        f"&& pip install --no-deps {packages}\nUSER {UID}\n"
    )
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    secret = ["--secret", f"id=ca,src={ca}"] if ca.is_file() else []
    cmd = [str(CLIENT), "build", "--network", "host", *secret, "-t", tag, str(context)]
    env = {**engine.env, "DOCKER_BUILDKIT": "1"}
    result = subprocess.run(cmd, env=env, text=True, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return tag


def test_the_compose_stack_moves_to_the_locks_mlflow_and_back(
    engine: Engine, old_mlflow_image: str, tiny_project: Callable[..., TinyProject], tmp_path: Path
) -> None:
    """docs/team.md's upgrade under Compose: a 3.17.2 server with a registered @champion; the
    backup; the lock's MLflow refuses the old database; `mlflow db upgrade`; the champion loads
    and the accounts hold; the rollback to the backup for the old server."""
    if reason := ports_taken():  # the round trip's stack is down by now
        pytest.skip(reason)
    compose, project = ComposeStack(engine, tmp_path / "stack"), tiny_project("compose-upgrade")
    (tmp_path / "old.yaml").write_text(f"services:\n  mlflow:\n    image: {old_mlflow_image}\n")
    with_old_server = [*compose.files, "-f", str(tmp_path / "old.yaml")]
    stack, dumps = compose.stack, {db: tmp_path / f"{db}.dump" for db in ("mlflow", "mlflow_auth")}
    try:
        compose.files = with_old_server
        compose.up()
        provision(stack.mlflow_url, stack.admin_password, project.experiment, project.model_name)
        with account(stack, "ci"):
            model_md5 = md5sum(project.write_model(out_bias=0.1))
            assert project.register()["decision"] == "champion"
        assert compose.schema() == OLD_SCHEMA
        for database, dump in dumps.items():
            compose.backup(database, dump)
        compose.compose("stop", "mlflow")

        compose.files = list(FILES)  # the new image's server stops at the schema check
        compose.compose("up", "-d", "--no-deps", "mlflow")
        refusal = wait_for_log(compose, "mlflow", "error: the database has schema")
        assert f"error: the database has schema {OLD_SCHEMA}, MLflow" in refusal, refusal
        compose.compose("stop", "mlflow")
        assert compose.schema() == OLD_SCHEMA
        upgrade = 'mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"'
        compose.compose("run", "--rm", "--no-deps", "mlflow", upgrade)
        assert compose.schema() != OLD_SCHEMA
        compose.up()
        champion_holds(stack, project, "1", model_md5)
        with account(stack, "ci"):  # ci may still register: v2, better, becomes the champion
            project.write_model(out_bias=0.2)
            project.write_metrics(0.1)
            assert project.register()["version"] == 2

        compose.compose("stop", "mlflow")  # the rollback: the backup, for the old server
        for database, dump in dumps.items():
            compose.restore(database, dump)
        compose.files = with_old_server
        compose.up()
        assert compose.schema() == OLD_SCHEMA
        champion_holds(stack, project, "1", model_md5)  # v2 came after the backup
    finally:
        compose.compose("down", "-v", check=False)


def wait_for_log(compose: ComposeStack, service: str, text: str, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in (log := compose.compose("logs", service).stdout):
        assert time.monotonic() < deadline, log
        time.sleep(1)
    return log


def start_two_nodes(engine: Engine, image: str, project: Path) -> list[subprocess.Popen[str]]:
    """docs/training.md's multi-node command in two containers on the host's network, one
    process each (gloo on the CPU, on the loopback: each node on an address of its own, as two
    machines would be), both on ``project`` (the shared storage a cluster's nodes mount: the
    data, and the checkpoint a restarted run resumes from)."""
    rendezvous = ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{free_port()}"]
    torchrun = ["torchrun", "--nnodes", "2", "--nproc_per_node", "1", *rendezvous]
    nodes = []
    for rank in (0, 1):
        cmd = [
            str(CLIENT), "run", "--rm", "--name", f"node{rank}", "--network", "host",
            "--env", "GLOO_SOCKET_IFNAME=lo", "--env", "OMP_WAIT_POLICY=PASSIVE",
            "-v", f"{project}:/app", image, *torchrun, "--rdzv_id", "fcrn-nodes",
            "--local-addr", f"127.0.0.{rank + 1}", *stage_argv("train"),
        ]  # fmt: skip
        nodes.append(
            subprocess.Popen(
                cmd, env=engine.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    return nodes


def finish(nodes: list[subprocess.Popen[str]]) -> list[str]:
    """Each node's log; both must have succeeded."""
    logs = [node.communicate(timeout=900)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n-----\n".join(logs)
    return logs


def test_two_containers_as_two_nodes_resume_after_one_is_killed(
    engine: Engine, image: str, reproduced: Path, tmp_path: Path
) -> None:
    project = copy_project(reproduced, tmp_path / "nodes", {"train.epochs": 4})
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(project)], check=True)
    model, checkpoints = project / "models/fcrn.pt", project / "checkpoints"
    logs = finish(start_two_nodes(engine, image, project))
    assert "DDP: all 2 ranks hold identical weights" in "\n".join(logs)
    uninterrupted = md5sum(model)
    model.unlink()

    nodes = start_two_nodes(engine, image, project)
    while not any(checkpoints.glob("train-*.pt")):  # an epoch done: node1 dies in the next
        assert all(node.poll() is None for node in nodes), [n.communicate()[0] for n in nodes]
        time.sleep(0.2)
    engine.docker("kill", "node1")
    for node in nodes:
        node.communicate(timeout=300)
    assert nodes[1].returncode != 0 and nodes[0].returncode != 0
    assert not model.exists()

    logs = finish(start_two_nodes(engine, image, project))
    resumed = re.search(r"resuming from \S+ after epoch (\d)", "\n".join(logs))
    assert resumed and 1 <= int(resumed[1]) < 4, logs
    assert md5sum(model) == uninterrupted
