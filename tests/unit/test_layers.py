"""The house rules of agent/slipway, checked on its source: no import circles (type-only
imports count), Docker only under backends/, FastAPI only under api/, modules small
enough to read in one sitting, and a CLI that never loads the store."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agent" / "slipway"
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, wherever the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in known else base)
    return {m for m in out if m in known and m != name}


def test_no_import_circles():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    # A package's __init__ importing its own submodules is how packages assemble.
    graph = {n: {m for m in deps if not m.startswith(n + ".")} for n, deps in graph.items()}
    circles, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                circles.append(trail[trail.index(nxt) :] + [nxt])
            elif state[nxt] == 0:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if state[name] == 0:
            visit(name, [name])
    assert circles == []


def test_docker_only_under_backends_and_fastapi_only_under_api():
    wrong = []
    for name, path in modules().items():
        top = {
            (a.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0)
            for a in (node.names if isinstance(node, ast.Import) else [node])
        }
        if "docker" in top and not name.startswith("slipway.backends"):
            wrong.append(f"{name} imports docker")
        if top & {"fastapi", "starlette"} and not name.startswith("slipway.api"):
            wrong.append(f"{name} imports fastapi")
    assert wrong == []


def test_modules_are_small_enough_to_read():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_cli_never_loads_the_store():
    code = "import sys, slipway.cli; print(sorted(m for m in sys.modules if 'store' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_two_test_files_share_a_name():
    # pytest imports test files by their base name (no packages under tests/): a second
    # file of one name fails the whole run at collection, only when both are collected.
    tests = PACKAGE.parents[1] / "tests"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
