"""Is the committed `dvc.lock` current? Checked on a clean copy of the tracked files.

A stale lock (code or params edited without `dvc repro` / `dvc commit`) makes every fresh clone,
teammate and CI job re-run those stages for nothing, and after a `dvc pull` retrain on the real
data. This copies the files git holds (the working tree's, the staged ones for the pre-commit
hook, or a commit's) to an empty folder, as a fresh clone has them, and asks the real `dvc
status`: outputs may be missing there (they are not in git), but every dependency and params
value in `dvc.lock` must match, and so must the outputs git holds. Exit status 1 names each stale
stage and the command that fixes it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")  # the venv's, also when a git hook runs this
MISSING = {"deleted", "not in cache"}  # absent from a clean checkout: DVC-managed, not in git


def _git(args: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, **kwargs)


def export(repo: Path, dest: Path, source: str) -> None:
    """Copy what git holds into ``dest``: ``worktree`` (tracked files as they are on disk),
    ``index`` (what `git commit` would record) or a revision such as ``HEAD``."""
    if source == "index":
        _git(["checkout-index", "--all", f"--prefix={dest}/"], repo)
    elif source == "worktree":
        listed = _git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], repo)
        with tempfile.TemporaryFile() as buffer:
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for name in listed.stdout.decode().split("\0"):
                    if name and (repo / name).exists():
                        tar.add(repo / name, arcname=name, recursive=False)
            buffer.seek(0)
            with tarfile.open(fileobj=buffer) as tar:
                tar.extractall(dest, filter="tar")
    else:
        archive = _git(["archive", "--format=tar", source], repo)
        with tempfile.TemporaryFile() as buffer:
            buffer.write(archive.stdout)
            buffer.seek(0)
            with tarfile.open(fileobj=buffer) as tar:
                tar.extractall(dest, filter="tar")
    _git(["init", "-q"], dest)  # DVC wants a git repository around its project


def _stage_outputs(tree: Path) -> set[str]:
    """Every path a stage writes (DVC's own name for it, variables resolved by `dvc`)."""
    lock = yaml.safe_load((tree / "dvc.lock").read_text()) or {}
    return {
        out["path"] for stage in lock.get("stages", {}).values() for out in stage.get("outs", [])
    }


def stale(tree: Path) -> dict[str, list[str]]:
    """Stage -> what in it does not match `dvc.lock` (empty when the lock is current)."""
    result = subprocess.run(
        [str(DVC) if DVC.exists() else "dvc", "status", "--json"],
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    )
    outputs = _stage_outputs(tree)
    problems: dict[str, list[str]] = {}
    for stage, changes in json.loads(result.stdout or "{}").items():
        found = []
        for change in changes:
            if change == "always changed":
                continue
            if isinstance(change, str):  # "changed command", ...
                found.append(change)
                continue
            for kind, entries in change.items():
                for path, status in entries.items():
                    if isinstance(status, dict):  # params: key -> status
                        found += [f"params {path}:{key} {s}" for key, s in status.items()]
                    elif status not in MISSING or (kind == "changed deps" and path not in outputs):
                        found.append(f"{path} {status}")
        if found:
            problems[stage] = found
    return problems


def report(problems: dict[str, list[str]]) -> str:
    lines = [f"error: dvc.lock is stale for stage {s}: {', '.join(p)}" for s, p in problems.items()]
    stages = " ".join(problems)
    lines.append(
        f"fix: `dvc repro {stages}` (or, after a change you checked cannot alter any output, "
        f"`dvc commit -f {stages}`), then commit dvc.lock with the change"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        default="worktree",
        help="worktree (default), index (the pre-commit hook) or a git revision",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-lock-") as tmp:
        export(REPO, Path(tmp), args.source)
        problems = stale(Path(tmp))
    if problems:
        print(report(problems), file=sys.stderr)
        sys.exit(1)
    print(f"dvc.lock is current ({args.source})")


if __name__ == "__main__":
    main()
