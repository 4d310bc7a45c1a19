"""A DVC remote holds the pipeline's outputs: pushed, then pulled back bit for bit into a
workspace that lost its cache and outputs, and into a fresh clone (what CI's `dvc pull` does).

The remote is a local directory; S3-compatible or SSH storage differs only in `dvc remote add`
(docs/operations.md, "DVC remote"). Only the data stages run: they are what training reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from e2e import REPO

from pipeline.io import md5sum

PROJECT_FILES = ["pipeline", "stages", "dvc.yaml", "params.yaml", "pyproject.toml"]
TARGET = "validate"  # with --with-deps: download, preprocess, validate (train has not run)

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ)
    # Stage commands say `python`: make it this interpreter, as `make` does with .venv/bin.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    result = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def remote_outputs(project: Path) -> dict[str, str]:
    """Path -> md5 of every output dvc.lock records that git does not track: what only the DVC
    cache, and so the remote, holds (metrics with `cache: false` are git's)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    in_git = set(run(["git", "ls-files"], project).splitlines())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"] not in in_git
    }


def assert_restored(project: Path, expected: dict[str, str]) -> None:
    for path, md5 in expected.items():
        assert (project / path).is_file(), f"{path} was not restored"
        assert md5sum(project / path) == md5, f"{path} differs from what was pushed"
    status = run(["dvc", "status", "--with-deps", TARGET], project)
    assert "Data and pipelines are up to date." in status, status


@pytest.fixture(scope="module")
def pushed(module_tmp: Callable[[str], Path]) -> tuple[Path, dict[str, str]]:
    """A git + DVC copy of the project on tiny synthetic data whose data stages ran, committed
    and pushed to a local-directory remote; with path -> md5 of the pushed outputs."""
    root = module_tmp("dvc-remote")
    project, remote = root / "project", root / "remote"
    project.mkdir()
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, project / name)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["synthetic"]["num_images"] = 8
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], project)
    run(["git", "config", "user.email", "ci@example.invalid"], project)
    run(["git", "config", "user.name", "ci"], project)
    run(["dvc", "init", "-q"], project)
    run(["dvc", "repro", TARGET], project)
    run(["dvc", "remote", "add", "-d", "local", str(remote)], project)
    run(["git", "add", "-A"], project)  # dvc.lock, the .gitignore files DVC wrote, .dvc/config
    run(["git", "commit", "-qm", "data stages"], project)
    run(["dvc", "push", "--with-deps", TARGET], project)

    outputs = remote_outputs(project)
    assert "data/processed/train.h5" in outputs and "reports/validation.html" in outputs
    assert all(md5sum(project / path) == md5 for path, md5 in outputs.items())
    pushed_files = [p for p in (remote / "files/md5").rglob("*") if p.is_file()]
    assert len(pushed_files) == len(outputs)
    return project, outputs


def test_pull_restores_deleted_cache_and_outputs(pushed: tuple[Path, dict[str, str]]) -> None:
    project, outputs = pushed
    shutil.rmtree(project / ".dvc/cache")
    for path in outputs:
        (project / path).unlink()
    assert "deleted" in run(["dvc", "status", "--with-deps", TARGET], project)

    run(["dvc", "pull", "--with-deps", TARGET], project)
    assert_restored(project, outputs)
    assert "in sync" in run(["dvc", "status", "--cloud", "--with-deps", TARGET], project)


def test_fresh_clone_pulls_the_outputs(pushed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """The remote is in the committed .dvc/config: a clone needs only `dvc pull`."""
    project, outputs = pushed
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not any((clone / path).exists() for path in outputs)

    run(["dvc", "pull", "--with-deps", TARGET], clone)
    assert_restored(clone, outputs)
