"""The shape of `jobs/`: no import circle between its modules (imports inside functions and under
TYPE_CHECKING count too), small modules and functions, and the `--model` defaults the path check of
`submit` relies on are the ones the commands declare."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.jobs.conftest import ROOT

JOBS = ROOT / "jobs"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    return {
        ("jobs" if path.stem == "__init__" else f"jobs.{path.stem}"): path
        for path in sorted(JOBS.glob("*.py"))
    }


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `path` imports anywhere in its body (`import jobs.x`, `from jobs.x
    import y`, `from jobs import x` where x is a module, relative imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: jobs/ is one flat package
                base = "jobs" + (f".{base}" if base else "")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported_modules(path, set(found)) - {name} for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, …, a], or None (depth-first search, colouring the modules)."""
    state: dict[str, str] = {}  # name -> "open" (on the current path) or "done"
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        path.append(name)
        for child in sorted(graph.get(name, ())):
            if state.get(child) == "open":
                return [*path[path.index(child) :], child]
            if child not in state and (cycle := visit(child)):
                return cycle
        path.pop()
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_through_function_level_imports(tmp_path):
    (tmp_path / "a.py").write_text("from jobs.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from jobs import c\n")
    (tmp_path / "c.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    import jobs.a\n")
    known = {"jobs.a", "jobs.b", "jobs.c"}
    graph = {f"jobs.{p.stem}": imported_modules(p, known) for p in tmp_path.glob("*.py")}
    assert find_cycle(graph) == ["jobs.a", "jobs.b", "jobs.c", "jobs.a"]
    assert find_cycle({**graph, "jobs.c": set()}) is None


def test_jobs_has_no_import_circle():
    graph = import_graph()
    assert "jobs.options" in graph["jobs.upload"]  # the graph sees imports (the --model defaults)
    assert "jobs.submit" in graph["jobs.cluster_cmds"]  # including those inside functions
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_and_functions_stay_small(name):
    path = modules()[name]
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) < MAX_MODULE_LINES, f"{path} has {len(source.splitlines())} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path}:{node.lineno} {node.name} has {length} lines"


def test_the_model_defaults_are_those_the_commands_declare():
    """`jobs.upload` checks the model a submitted command will read when it names none; it takes the
    default from `jobs.options`, which the commands declare theirs with."""
    import typer.main

    from jobs.cli import app
    from jobs.options import model_default

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    declared = {
        name: next((p.default for p in command.params if p.name == "model"), None)
        for name, command in commands.items()
    }
    assert declared["label"] == "champion" and declared["train"] is None
    assert {name: model_default(name) for name in commands} == declared
