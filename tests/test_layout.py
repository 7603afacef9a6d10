"""The package layout is a layering (docs/design/development.md): every import inside lrrun goes to a
package on a lower layer or stays inside its own package, no import circle exists (lazy
imports inside functions count too), and no module outgrows ~300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "lrrun"
# Lowest first. errors, files and world are the base every package may import.
LAYERS = {
    "errors": 0,
    "files": 0,
    "world": 0,
    "config": 1,
    "data": 2,
    "models": 2,
    "schedule": 3,
    "tasks": 3,
    "logs": 4,
    "train": 5,
    "sweep": 6,
    "fused": 6,
    "tools": 7,
    "cli": 8,
    "__main__": 9,
}
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The lrrun modules ``name`` imports, anywhere in its body."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lrrun.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("lrrun"):
                continue
            for alias in node.names:  # `from lrrun.config import settings` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES and m != "lrrun"}


def package(name: str) -> str:
    return name.split(".")[1] if name != "lrrun" else "lrrun"


def test_every_module_sits_on_a_layer() -> None:
    assert {package(m) for m in MODULES if m != "lrrun"} == set(LAYERS)


@pytest.mark.parametrize("name", [m for m in MODULES if m != "lrrun"])
def test_imports_go_down_the_layers(name: str) -> None:
    here = package(name)
    upward = [
        target
        for target in imports(name)
        if package(target) != here and LAYERS[package(target)] >= LAYERS[here]
    ]
    assert not upward, f"{name} (layer {LAYERS[here]}) imports {upward} from its layer or above"


def test_no_import_circle() -> None:
    graph = {name: imports(name) for name in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circle = [*path[path.index(nxt) :], nxt]
                pytest.fail("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_checker_sees_real_imports() -> None:
    """The checks above are only as good as the import reader: spot-check it."""
    assert "lrrun.config.settings" in imports("lrrun.train.runner")
    assert "lrrun.config.param_groups" in imports("lrrun.train.parts")  # from pkg import module
    assert "lrrun.logs.runs" in imports("lrrun.logs.plots")  # a lazy import in a function


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it along its concepts"
