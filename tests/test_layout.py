"""The tree's shape, read from its imports (every import: at module level, inside functions and under
TYPE_CHECKING): no module of gliner_core, synth, pipelines or jobs imports another in a circle; the
rooms of `pipelines/` depend one way; no module or function grows past what a reader takes in."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gliner_core", "synth", "pipelines", "jobs")
# pipelines' rooms, lowest first: a room imports only rooms at or below it ("shared" is the bottom)
ROOMS = ("shared", "data", "selection", "weak", "training", "registry", "ops", "loop")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the tree that `name` imports (a package imported for a name it re-exports counts
    as its `__init__`; the parent packages Python runs first do not count)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_in_a_circle():
    assert circles(graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "pipelines" or len(parts) == 1:
        return None  # the public surface (pipelines/__init__) may name every room
    return parts[1] if parts[1] in ROOMS else "shared"


def test_pipelines_rooms_depend_one_way():
    rank = {name: i for i, name in enumerate(ROOMS)}
    upward = [
        f"{module} -> {other}"
        for module, targets in graph().items()
        for other in targets
        if room(module) and room(other) and rank[room(other)] > rank[room(module)]  # type: ignore[index]
    ]
    assert upward == []


def test_nothing_inside_pipelines_imports_the_public_surface():
    """`pipelines/__init__` is for jobs/, bench/ and users: a module inside importing it would tie every
    room to every other."""
    inside = [m for m, targets in graph().items() if m.startswith("pipelines.") and "pipelines" in targets]
    assert inside == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_over_600_lines_and_no_function_over_80(package):
    long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert long == []
