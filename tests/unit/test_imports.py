"""The app's imports run one way: cli -> server -> main -> features -> settings, with no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import app

PACKAGE = Path(app.__file__).parent


def module_name(path: Path) -> str:
    parts = ["app", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def raw_imports(name: str) -> set[str]:
    """Every module `name` imports, at any depth of its code (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from app.functions import orders` names a submodule
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


def imports_of(name: str) -> set[str]:
    # The package init runs before any submodule anyway; `from app import __version__` is no edge.
    return {m for m in raw_imports(name) if m in MODULES and m != "app"}


GRAPH = {name: imports_of(name) for name in MODULES}


def reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_graph_sees_the_known_edges() -> None:
    # Guards the checker itself: lazy imports and submodule imports are edges.
    assert "app.server" in GRAPH["app.cli"]
    assert "app.main" in GRAPH["app.server"]
    assert "app.functions.orders" in GRAPH["app.functions"]
    assert "app.functions.deps" in GRAPH["app.functions.orders"]


def test_no_module_reaches_itself() -> None:
    circles = sorted(name for name in GRAPH if name in reachable(name))
    assert circles == [], f"import circles through {circles}"


def test_imports_run_one_way() -> None:
    order = ["app.cli", "app.server", "app.main", "app.settings"]
    for i, upper in enumerate(order):
        for lower in order[i + 1 :]:
            assert upper not in reachable(lower), f"{lower} reaches back to {upper}"
    assert reachable("app.settings") == set(), "settings is the bottom layer"


def test_only_the_sdk_boundary_touches_the_sdk_internals() -> None:
    touching = sorted(n for n in MODULES if any(m.startswith("inngest._internal") for m in raw_imports(n)))
    assert touching == ["app.sdk"]
