"""The files no test can run in full everywhere (the Dockerfiles and compose.yaml: only where a
Docker engine can start, tests/test_docker.py; the workflow: GitHub only; .ci/run: it installs
system packages; .ci/retrain: its PR comment needs GitHub) are at least held to their linters,
plus the two rules the linters do not enforce."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from e2e import BIN, REPO

WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))


def lint(tool: str, *args: str | Path) -> None:
    result = subprocess.run(
        [str(BIN / tool), *map(str, args)], cwd=REPO, text=True, capture_output=True
    )
    assert result.returncode == 0, f"{tool} found problems:\n{result.stdout}{result.stderr}"


def test_dockerfile_passes_hadolint() -> None:
    lint("hadolint", "Dockerfile")


def test_workflows_pass_actionlint_with_shellcheck() -> None:
    """actionlint checks expressions, untrusted inputs in scripts and, through shellcheck, the
    `run:` scripts themselves (it skips them silently when shellcheck is not found)."""
    assert WORKFLOWS
    lint("actionlint", "-shellcheck", BIN / "shellcheck", *WORKFLOWS)


def test_ci_scripts_pass_shellcheck() -> None:
    lint("shellcheck", ".ci/run", ".ci/retrain", *sorted(REPO.glob("deploy/*.sh")))


def test_no_expressions_inside_run_scripts() -> None:
    """Values reach scripts through `env:` only. actionlint flags known-untrusted contexts; this
    also keeps out the ones it cannot know about (inputs, vars) and any added later."""
    for workflow in WORKFLOWS:
        for name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            for step in job.get("steps", []):
                assert "${{" not in step.get("run", ""), f"{workflow.name}: {name}: {step}"


def test_image_does_not_run_as_root() -> None:
    """hadolint only objects to an explicit `USER root`; an image without USER runs as root too."""
    users = re.findall(r"^USER\s+(\S+)", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert users and users[-1] not in {"0", "root"}


def test_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    """compose.yaml against the Compose Specification's schema (check-jsonschema ships it),
    also where no engine runs it; a misspelt key fails the same check."""
    lint("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml")
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        (REPO / "compose.yaml").read_text().replace("    environment:", "    env:", 1)
    )
    check = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)]
    assert subprocess.run(check, capture_output=True).returncode != 0
    lint("hadolint", "deploy/mlflow.Dockerfile", "deploy/postgres.Dockerfile")


def test_compose_secrets_come_from_the_environment() -> None:
    """The three services; every password and key is a required `${VAR:?...}`; MLflow and S3
    listen on the host's loopback only; the MLflow image's packages are the lock's versions."""
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert {"postgres", "s3", "mlflow"} <= compose["services"].keys()
    for name, service in compose["services"].items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET|_KEY$|_URI$", key):
                assert re.search(r"\$\{\w+:\?", value), f"{name}: {key} is not from the environment"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"
    lock = (REPO / "requirements.lock").read_text().lower()
    dockerfile = (REPO / "deploy/mlflow.Dockerfile").read_text()
    pins = re.findall(r"([\w-]+)==([\w.]+)", dockerfile)
    assert len(pins) == 3 and all(f"\n{p.lower()}=={v}\n" in lock for p, v in pins), pins
    mlflow_version = re.search(r"^mlflow==(\S+)", lock, re.M)[1]
    assert f"mlflow:v{mlflow_version}" in dockerfile
