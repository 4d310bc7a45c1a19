"""`dvc.yaml`'s code deps are the files each stage's script imports (tools/stage_deps.py)."""

from __future__ import annotations

from pathlib import Path

from tools import stage_deps


def test_every_stage_lists_exactly_the_code_it_runs() -> None:
    problems = stage_deps.differences()
    assert not problems, "\n".join([*problems, "fix: python tools/stage_deps.py --write"])


def test_train_runs_the_augmentation_and_the_data_stages_do_not() -> None:
    deps = stage_deps.expected_deps()
    assert "pipeline/data/augment.py" in deps["train"]
    assert "pipeline/data/augment.py" in deps["evaluate"]
    for stage in ("params", "download", "raw_frames", "preprocess", "validate"):
        assert not any("augment" in d or d == "pipeline/predict.py" for d in deps[stage]), stage
    assert not any("predict.py" in d for ds in deps.values() for d in ds)


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_walk_follows_lazy_relative_and_package_imports(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "stages/s.py": "from pipeline.a import f\n",
            "pipeline/__init__.py": "",
            "pipeline/a.py": "def f():\n    from .sub import b\n",
            "pipeline/sub/__init__.py": "",
            "pipeline/sub/b.py": "import numpy\nfrom . import c\n",
            "pipeline/sub/c.py": "",
            "pipeline/sub/unused.py": "",
            "pipeline/typing_only.py": "",
            "pipeline/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    import pipeline.typing_only\n",
            "pipeline/stage.py": "import pipeline.d\n",  # excluded: not followed either
        },
    )
    (root / "stages/s.py").write_text("from pipeline.a import f\nimport pipeline.stage\n")
    files = stage_deps.imported_files(root / "stages/s.py", root)
    assert files == {
        "stages/s.py",
        "pipeline/__init__.py",
        "pipeline/a.py",
        "pipeline/sub/__init__.py",
        "pipeline/sub/b.py",
        "pipeline/sub/c.py",
    }
    # A folder stands for its files only when all of them run.
    assert "pipeline/sub" not in stage_deps.collapse(files, root)
    (root / "pipeline/sub/unused.py").unlink()
    assert "pipeline/sub" in stage_deps.collapse(files, root)


def test_write_puts_the_computed_lists_into_dvc_yaml(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "stages/s.py": "import pipeline.a\n",
            "pipeline/__init__.py": "",
            "pipeline/a.py": "",
            "pipeline/b.py": "",
            "dvc.yaml": "stages:\n  s:\n    cmd: python stages/s.py out\n    deps:\n"
            "      - pipeline/b.py  # stale\n      - data/in.txt  # kept\n    outs:\n"
            "      - out\n",
        },
    )
    assert stage_deps.differences(root) == [
        "stage s: runs pipeline/__init__.py but dvc.yaml does not list it",
        "stage s: runs pipeline/a.py but dvc.yaml does not list it",
        "stage s: runs stages/s.py but dvc.yaml does not list it",
        "stage s: dvc.yaml lists pipeline/b.py but the stage does not run all of it",
    ]
    stage_deps.write(root)
    assert stage_deps.differences(root) == []
    assert "      - data/in.txt  # kept\n" in (root / "dvc.yaml").read_text()
