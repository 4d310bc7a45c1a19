"""The committed `dvc.lock` matches the committed code and params (tools/check_lock.py).

Run on a clean copy of the tracked files, as a fresh clone has them: outputs are missing there,
but no dependency hash or params value may differ, or every clone re-runs those stages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from e2e import REPO, env, run, set_params

from tools.check_lock import export, report, stale


def test_the_committed_lock_is_current(tmp_path: Path) -> None:
    export(REPO, tmp_path, "worktree")
    problems = stale(tmp_path)
    assert not problems, report(problems)


def test_an_edit_without_relocking_names_the_stages_and_the_fix(tmp_path: Path) -> None:
    export(REPO, tmp_path, "worktree")
    with (tmp_path / "pipeline/predict.py").open("a") as f:
        f.write("# no stage runs this file\n")
    assert stale(tmp_path) == {}
    with (tmp_path / "pipeline/data/augment.py").open("a") as f:
        f.write("# an edit\n")
    set_params(tmp_path / "params.yaml", {"eval.batch_size": 4})
    problems = stale(tmp_path)
    assert problems == {
        "params": ["params.yaml modified"],  # it checks the whole file
        "train": ["pipeline/data/augment.py modified"],
        "evaluate": [
            "pipeline/data/augment.py modified",
            "params params.yaml:eval modified",
        ],
    }
    text = report(problems)
    assert "error: dvc.lock is stale for stage train: pipeline/data/augment.py modified" in text
    assert "`dvc repro params train evaluate`" in text
    assert "`dvc commit -f params train evaluate`" in text


@pytest.mark.slow
def test_the_check_refuses_a_commit_that_forgot_to_relock(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(REPO), str(clone)], tmp_path)
    run(["git", "config", "user.email", "ci@example.invalid"], clone)
    run(["git", "config", "user.name", "ci"], clone)
    with (clone / "pipeline/data/nyu.py").open("a") as f:
        f.write("# an edit\n")
    run(["git", "commit", "-qam", "edit a dep, forget dvc repro"], clone)
    check = [sys.executable, "tools/check_lock.py", "--source", "HEAD"]
    result = subprocess.run(check, cwd=clone, env=env(), text=True, capture_output=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: dvc.lock is stale for stage download: pipeline/data/nyu.py modified" in (
        result.stderr
    )
    result = subprocess.run(
        [*check[:-1], "HEAD~1"], cwd=clone, env=env(), text=True, capture_output=True
    )
    assert result.returncode == 0, result.stderr
    assert "dvc.lock is current (HEAD~1)" in result.stdout


@pytest.mark.slow
def test_the_git_hook_refuses_a_commit_with_a_stale_lock(tmp_path: Path) -> None:
    """`make hooks` (pre-commit) in a clone: the commit that forgot to re-lock is refused."""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(REPO), str(clone)], tmp_path)
    (clone / ".venv").symlink_to(Path(sys.executable).parents[1])
    hook_env = {**env(), "PRE_COMMIT_HOME": str(tmp_path / "pre-commit")}
    pre_commit = str(Path(sys.executable).with_name("pre-commit"))
    subprocess.run([pre_commit, "install"], cwd=clone, env=hook_env, check=True)
    for key, value in (("user.email", "ci@example.invalid"), ("user.name", "ci")):
        run(["git", "config", key, value], clone)
    with (clone / "pipeline/data/nyu.py").open("a") as f:
        f.write("# an edit\n")
    commit = ["git", "commit", "-qam", "edit a dep, forget dvc repro"]
    refused = subprocess.run(commit, cwd=clone, env=hook_env, text=True, capture_output=True)
    assert refused.returncode != 0
    hook_output = refused.stdout + refused.stderr  # git passes the hook's output on stderr
    assert "dvc.lock is stale for stage download: pipeline/data/nyu.py modified" in hook_output
    assert (
        run(["git", "rev-list", "--count", "HEAD"], clone).stdout
        == run(["git", "rev-list", "--count", "HEAD"], REPO).stdout
    )  # nothing was committed
