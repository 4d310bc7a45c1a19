"""The code's shape as a test: imports point down the layers, modules and functions stay small.

The layers, lowest first. A module may import modules of its own group and of any lower layer;
groups of one layer (``data`` and ``model``; ``train`` and ``evaluate``) never import each other,
so either can change without the other. Reads the source with ``ast``: no module is imported.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e import REPO

# layer -> {group: module prefixes}; a prefix covers the module and its submodules.
LAYERS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "base": (
            "pipeline.access",
            "pipeline.config",
            "pipeline.io",
            "pipeline.download",
            "pipeline.identity",
            "pipeline.metrics",
            "pipeline.params_file",
            "pipeline.portable",
            "pipeline.runtime",
            "pipeline.stage",
            "pipeline.train_log",
        )
    },
    {"data": ("pipeline.data",), "model": ("pipeline.model",)},
    {"inference": ("pipeline.inference",)},
    {"train": ("pipeline.train",), "evaluate": ("pipeline.evaluate", "pipeline.plots")},
    {"tracking": ("pipeline.tracking",)},
    {
        "registry": (
            "pipeline.registry",
            "pipeline.served_model",
            "pipeline.predict",
            "pipeline.predictors",
            "pipeline.onnx_export",
        ),
        "team": ("pipeline.team",),
    },
    {"stages": ("stages",)},
)
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
# Modules whose import must not pull in torch (read by tools that never train).
TORCH_FREE = ("pipeline.train_log", "pipeline.metrics", "pipeline.params_file")


def _modules(root: Path = REPO) -> dict[str, Path]:
    """Dotted name -> file for every module of pipeline/ and stages/."""
    found = {}
    for path in [*root.glob("pipeline/**/*.py"), *root.glob("stages/*.py")]:
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, at any depth of its code (lazy imports count)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            # `from pipeline import tracking` imports the module pipeline.tracking
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known}


def _place(module: str) -> tuple[int, str]:
    """(layer, group) of a module: the longest prefix that covers it decides."""
    best: tuple[int, int, str] | None = None
    for layer, groups in enumerate(LAYERS):
        for group, prefixes in groups.items():
            for prefix in prefixes:
                covers = module == prefix or module.startswith(prefix + ".")
                if covers and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), layer, group)
    if best is None:
        raise LookupError(module)
    return best[1], best[2]


def back_arrows(root: Path = REPO) -> list[str]:
    """Every import that points up a layer or across to a sibling group, as readable lines."""
    modules = _modules(root)
    known = set(modules)
    arrows = []
    for module, path in sorted(modules.items()):
        if module == "pipeline":
            continue
        layer, group = _place(module)
        for target in sorted(_imports(path, known)):
            if target == "pipeline":
                continue
            t_layer, t_group = _place(target)
            if t_layer > layer or (t_layer == layer and t_group != group):
                arrows.append(f"{module} ({group}) imports {target} ({t_group})")
    return arrows


def oversized(root: Path = REPO) -> list[str]:
    """Modules over MAX_MODULE_LINES and functions over MAX_FUNCTION_LINES."""
    found = []
    for path in sorted(_modules(root).values()):
        text = path.read_text()
        rel = path.relative_to(root)
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{rel}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for module in _modules():
        try:
            _place(module)
        except LookupError:
            if module != "pipeline":
                unplaced.append(module)
    assert not unplaced, f"add these to LAYERS in {Path(__file__).name}: {unplaced}"


def test_imports_point_down() -> None:
    arrows = back_arrows()
    assert not arrows, "imports against the layers:\n" + "\n".join(arrows)


def test_modules_and_functions_are_small() -> None:
    found = oversized()
    assert not found, "split these:\n" + "\n".join(found)


def _runtime_imports(tree: ast.AST) -> Iterator[str]:
    """Names imported when the module runs: blocks under ``if TYPE_CHECKING:`` are skipped."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (name for child in node.orelse for name in _runtime_imports(child))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        yield from _runtime_imports(node)


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free(module: str) -> None:
    """Follows the project imports transitively and checks none of them imports torch."""
    modules = _modules()
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        names = set(_runtime_imports(ast.parse(modules[current].read_text())))
        assert not any(n == "torch" or n.startswith("torch.") for n in names), (
            f"{current} imports torch, so {module} does"
        )
        todo.extend(_imports(modules[current], set(modules)))


def test_a_planted_upward_import_is_found(tmp_path: Path) -> None:
    """The checks can fail: a copy of the tree with config importing the trainer, and a module
    of 301 lines."""
    for name in ("pipeline", "stages"):
        for path in (REPO / name).rglob("*.py"):
            copy = tmp_path / path.relative_to(REPO)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(path.read_text())
    config = tmp_path / "pipeline/config.py"
    config.write_text(config.read_text() + "\nfrom pipeline.inference import predict_depth\n")
    (tmp_path / "pipeline/data/big.py").write_text("x = 1\n" * 301)
    assert "pipeline.config (base) imports pipeline.inference (inference)" in back_arrows(tmp_path)
    assert "pipeline/data/big.py: 301 lines" in oversized(tmp_path)


if __name__ == "__main__":  # the report for a before/after table
    print("\n".join(back_arrows() + oversized()))
    sys.exit(0)
