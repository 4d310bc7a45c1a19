"""What a run records of where it comes from: params, git, DVC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params -> ``{"train.lr": "0.0003", ...}``; lists stay one value."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else str(value)
    return flat


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):  # no git, or not a repository
        return None
    return out.stdout.strip()


@dataclass(frozen=True)
class GitState:
    """What a run records of the code it ran."""

    commit: str
    branch: str | None  # None when HEAD is detached (CI checks out pull requests so)
    dirty: bool


def git_state() -> GitState | None:
    """The commit, branch and dirty flag of the repository at the cwd; None outside git.

    Dirty means changed code: params.yaml, dvc.lock and reports/ are left out, since
    `dvc exp run -S` edits params.yaml, every stage rewrites dvc.lock and DVC deletes a stage's
    reports before running it; the run records their content as params, tags and artifacts.
    """
    if not (commit := _git("rev-parse", "HEAD")):
        return None
    changed = _git(
        "status", "--porcelain", "--untracked-files=no", "--", ".",
        ":!params.yaml", ":!dvc.lock", ":!reports",
    )  # fmt: skip
    branch = _git("symbolic-ref", "--quiet", "--short", "HEAD")
    return GitState(commit, branch or None, bool(changed))


def run_name(git: GitState | None) -> str | None:
    """The DVC experiment's name, else ``branch@commit`` (``-dirty`` with changed code): a run
    of `dvc repro` in the workspace is then found by the commit it ran. None: MLflow's own."""
    if name := os.environ.get("DVC_EXP_NAME"):
        return name
    if git is None:
        return None
    label = f"{git.branch}@{git.commit[:7]}" if git.branch else git.commit[:7]
    return label + ("-dirty" if git.dirty else "")


def lineage_tags(git: GitState | None) -> dict[str, str]:
    """Where the run comes from (the stage script, for the UI's Source column), the git commit
    and dirty flag, the DVC experiment, and dvc.lock's hashes of data/ outputs."""
    script, cwd = Path(sys.argv[0]).resolve(), Path.cwd().resolve()
    source = script.relative_to(cwd) if script.is_relative_to(cwd) else script
    tags = {"mlflow.source.name": str(source), "mlflow.source.type": "LOCAL"}
    if git is not None:
        tags["mlflow.source.git.commit"] = git.commit
        tags["git.dirty"] = str(git.dirty)
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline")):
        if value := os.environ.get(env):
            tags[tag] = value
    lock = Path("dvc.lock")
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []):
                if str(out["path"]).startswith("data/") and "md5" in out:
                    tags[f"dvc.lock.{out['path']}"] = out["md5"]
    return tags
