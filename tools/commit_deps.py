"""`dvc commit` for a change that cannot alter any output, without the outputs on this machine.

`dvc commit` records a stage's deps and outputs as they are on disk, so it needs every output:
the 258 MB model, the real NYU files. A change that provably leaves the outputs alone (a moved
function, a comment, a refactor checked to give the same bytes) only needs the *deps* recorded.
This does that through DVC's own stage objects: each stage's deps (code files and params values)
are hashed as `dvc commit` hashes them; outputs present on disk are hashed too, missing ones keep
what `dvc.lock` says. Check first that the change is a no-op (a small run before and after, or a
`dvc repro` elsewhere); then commit `dvc.lock` with it. `python tools/check_lock.py` confirms.

    python tools/commit_deps.py [STAGE ...]   # default: every stage
"""

from __future__ import annotations

import argparse

from dvc.repo import Repo


def commit_deps(stages: list[str]) -> list[str]:
    """Record the current deps of ``stages`` (all when empty) in dvc.lock; return their names."""
    repo = Repo()
    done = []
    with repo.lock:
        for stage in repo.index.stages:
            if not stage.cmd or (stages and stage.name not in stages):
                continue
            stage.save(allow_missing=True, run_cache=False)
            stage.dump(update_pipeline=False)
            done.append(stage.name)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stages", nargs="*", help="stage names (default: every stage)")
    args = parser.parse_args()
    print(f"dvc.lock: deps recorded for {', '.join(commit_deps(args.stages))}")


if __name__ == "__main__":
    main()
