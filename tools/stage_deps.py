"""Each DVC stage's code deps, read off its script's imports (AST: nothing is imported or run).

A stage's outputs can change only through code it runs, and the code it runs is what its script
imports, transitively, from this repository. So `dvc.yaml` lists exactly those files: a file the
stage imports but does not list would leave DVC saying "up to date" over outputs the new code
would not produce; a file it lists but does not import re-runs it (and everything after it) for
an edit that cannot change it. Folders stand for files when the stage imports every ``.py`` file
in them. ``python tools/stage_deps.py`` prints each stage's list; ``--check`` exits 1 naming each
difference; ``--write`` puts the lists into `dvc.yaml`.
"""

from __future__ import annotations

import argparse
import ast
import functools
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "stages")  # where the repository's own code lives

# Modules a stage runs that provably cannot change its outputs. Each needs its reason.
EXCLUDED = {
    # The `error:` line wrapper: on failure it prints one line and sets the exit status; it
    # never reads or writes a stage's files. (Its own imports are not followed either.)
    "pipeline/stage.py",
}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, package: str) -> set[str]:
    """Dotted names a module imports anywhere (also inside functions: a lazy import still runs),
    but not under ``if TYPE_CHECKING:``, which never runs. ``from a import b`` yields ``a`` and
    ``a.b``: ``b`` may be a submodule."""
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _module_file(name: str, root: Path) -> Path | None:
    """The repository file of a dotted module name, or None (a third-party module, or a name
    that is an attribute, not a module)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(module: Path, root: Path) -> list[Path]:
    """``__init__.py`` files Python runs before a module: those of every enclosing package."""
    inits = []
    folder = module.parent
    while folder != root:
        if (folder / "__init__.py").is_file():
            inits.append(folder / "__init__.py")
        folder = folder.parent
    return inits


@functools.cache
def _module_imports(path: Path, root: Path) -> list[Path]:
    """The repository modules one file imports (parsed once per run)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names = _imported_names(ast.parse(path.read_text(), str(path)), package)
    return [m for m in map(lambda n: _module_file(n, root), names) if m is not None]


def imported_files(script: Path, root: Path = REPO) -> set[str]:
    """Repository files (relative POSIX paths) that running ``script`` executes."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        rel = path.relative_to(root).as_posix()
        if path in seen or rel in EXCLUDED:
            continue
        seen.add(path)
        todo.extend(p for p in _package_inits(path, root) if p not in seen)
        todo.extend(_module_imports(path, root))
    return {p.relative_to(root).as_posix() for p in seen}


def collapse(files: set[str], root: Path = REPO) -> list[str]:
    """``files`` with each folder whose ``.py`` files are all in ``files`` written as the
    folder (the smallest list that names exactly these files)."""
    result = set(files)
    folders = sorted({Path(f).parent for f in files}, key=lambda p: -len(p.parts))
    for folder in folders:
        if folder == Path(".") or folder.parts[0] not in PACKAGES or len(folder.parts) < 2:
            continue  # never a top-level package: `pipeline` would be every module
        members = {p.relative_to(root).as_posix() for p in (root / folder).rglob("*.py")}
        if members and members <= files:
            result = {f for f in result if not f.startswith(f"{folder.as_posix()}/")}
            result.add(folder.as_posix())
    return sorted(result)


def stage_scripts(dvc_yaml: Path) -> dict[str, Path]:
    """Each stage's script: the ``stages/*.py`` its command runs."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    scripts = {}
    for name, stage in stages.items():
        words = " ".join(stage["cmd"].split()).split(" ")
        script = next((w for w in words if w.startswith("stages/") and w.endswith(".py")), None)
        if script is not None:
            scripts[name] = dvc_yaml.parent / script
    return scripts


def is_code(dep: str) -> bool:
    return dep.split("/")[0] in PACKAGES


def expected_deps(root: Path = REPO) -> dict[str, list[str]]:
    """Stage name -> the code deps `dvc.yaml` should list."""
    scripts = stage_scripts(root / "dvc.yaml")
    return {name: collapse(imported_files(script, root), root) for name, script in scripts.items()}


def differences(root: Path = REPO) -> list[str]:
    """One line for each code dep `dvc.yaml` misses or lists in vain, naming stage and file."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    problems = []
    for name, wanted in expected_deps(root).items():
        listed = {d for d in stages[name].get("deps", []) if isinstance(d, str) and is_code(d)}
        problems += [
            f"stage {name}: runs {dep} but dvc.yaml does not list it"
            for dep in wanted
            if dep not in listed
        ]
        problems += [
            f"stage {name}: dvc.yaml lists {dep} but the stage does not run all of it"
            for dep in sorted(listed - set(wanted))
        ]
    return problems


def write(root: Path = REPO) -> None:
    """Replace each stage's code deps in `dvc.yaml` by the computed list, in place: the other
    deps, the comments and the order of everything else are kept."""
    path = root / "dvc.yaml"
    wanted = expected_deps(root)
    out: list[str] = []
    stage, in_deps = None, False
    for line in path.read_text().splitlines(keepends=True):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 2 and stripped.endswith(":") and not stripped.startswith("#"):
            stage, in_deps = stripped[:-1], False
        elif indent == 4:
            in_deps = stripped == "deps:"
            if in_deps and stage in wanted:
                out.append(line)
                out += [f"      - {dep}\n" for dep in wanted[stage]]
                continue
        elif in_deps and stripped.startswith("- ") and is_code(stripped[2:].split("#")[0].strip()):
            continue
        out.append(line)
    path.write_text("".join(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml differs")
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args()
    if args.write:
        write()
    elif args.check:
        problems = differences()
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        if problems:
            print("fix: python tools/stage_deps.py --write, then dvc commit", file=sys.stderr)
            sys.exit(1)
    else:
        for name, deps in expected_deps().items():
            print(f"{name}:\n" + "".join(f"  - {d}\n" for d in deps), end="")


if __name__ == "__main__":
    main()
