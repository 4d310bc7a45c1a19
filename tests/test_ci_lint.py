"""The files no test here can run in full (the Dockerfile: no Docker engine; the workflow: GitHub
only; .ci/run: it installs system packages; .ci/retrain: its PR comment needs GitHub) are at least
held to their linters, plus the two rules the linters do not enforce."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from e2e import REPO

BIN = Path(sys.executable).parent  # the linters come as wheels in the lock
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
    lint("shellcheck", ".ci/run", ".ci/retrain")


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
