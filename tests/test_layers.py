"""The floors of the house (docs/ARCHITECTURE.md, "Layers"), checked over `ast`: a module may
import its own package and any package on a lower floor, never one on its floor or above (a
back-arrow), and the modules' import graph has no cycle. Every import counts, at module level
or inside a function (an import moved into a function to dodge a cycle is still a cycle), except
those under `if TYPE_CHECKING:` (never executed). The checker is shown to fail on a planted
back-arrow and a planted cycle (a temporary module tree) and to pass on the real tree."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. Packages on one floor may not import each other.
FLOORS: list[tuple[str, ...]] = [
    ("bml_core",),  # the library: schema, specs, strategies, trainer, statistics
    ("db",),  # the store
    ("worker",),  # the Celery tasks and the run process
    ("services",),  # actions, reports, process start-up: what the front ends share
    ("app",),  # the dashboard
    ("bml_cli", "bench"),  # the CLI and the benchmarks: the top floor, nothing imports them
]


# Back-arrows known and owned elsewhere, each with why; the test fails on any other, and on one
# of these once it is gone (so the list cannot go stale).
KNOWN_BACK_ARROWS: dict[str, str] = {
    "bml_core.tracking.store -> db": "own-loop runs write the store (lazy import); tracking is being reworked",
    "bml_core.tracking.store -> db.own_runs": "as above",
}


def _floor_of(floors: list[tuple[str, ...]]) -> dict[str, int]:
    return {pkg: i for i, names in enumerate(floors) for pkg in names}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path, packages: list[str]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (names resolved to the module files that
    exist under `root`; `from pkg import sub` counts as `pkg.sub` when sub is a module, as
    `pkg` otherwise)."""
    files = {
        _module_name(root, p): p
        for pkg in packages
        if (root / pkg).is_dir()
        for p in sorted((root / pkg).rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        _collect(tree, mod, path.name == "__init__.py", set(files), targets)
        graph[mod] = {t for t in targets if t in files and t != mod}
    return graph


def _collect(node: ast.AST, mod: str, is_pkg: bool, modules: set[str], targets: set[str]) -> None:
    """The modules imported anywhere below `node`, skipping `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:
                _collect(sub, mod, is_pkg, modules, targets)
            continue
        if isinstance(child, ast.Import):
            targets.update(a.name for a in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:
                anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                anchor = anchor[: len(anchor) - (child.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for a in child.names:  # a submodule, else a name from the module itself
                sub = f"{base}.{a.name}"
                targets.add(sub if sub in modules else base)
        _collect(child, mod, is_pkg, modules, targets)


def back_arrows(graph: dict[str, set[str]], floors: list[tuple[str, ...]]) -> list[str]:
    """`a -> b` for every import of a package on the importer's floor or above."""
    floor = _floor_of(floors)
    found = []
    for mod, deps in sorted(graph.items()):
        top = mod.split(".")[0]
        for dep in sorted(deps):
            other = dep.split(".")[0]
            if other != top and other in floor and top in floor and floor[other] >= floor[top]:
                found.append(f"{mod} -> {dep}")
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph.get(nxt, ()))))
    return None


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


PLANTED_FLOORS: list[tuple[str, ...]] = [("low",), ("mid",), ("top",)]
CLEAN = {
    "low/__init__.py": "",
    "low/a.py": "import os\n",
    "low/b.py": "from low import a\n",
    "mid/__init__.py": "",
    "mid/m.py": "from low.b import something\nfrom . import n\n",
    "mid/n.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mid import m\n",
    "top/__init__.py": "",
    "top/t.py": "import mid.m\nfrom low import a\n",
}


def test_planted_clean_tree_passes(tmp_path: Path) -> None:
    _plant(tmp_path, CLEAN)
    graph = import_graph(tmp_path, ["low", "mid", "top"])
    assert graph["mid.m"] == {"low.b", "mid.n"}  # relative import resolved; TYPE_CHECKING skipped
    assert graph["mid.n"] == set()
    assert back_arrows(graph, PLANTED_FLOORS) == []
    assert find_cycle(graph) is None


def test_planted_back_arrow_fails(tmp_path: Path) -> None:
    # an import inside a function still counts
    _plant(tmp_path, {**CLEAN, "low/b.py": "def f():\n    from top.t import x\n    return x\n"})
    graph = import_graph(tmp_path, ["low", "mid", "top"])
    assert back_arrows(graph, PLANTED_FLOORS) == ["low.b -> top.t"]


def test_planted_same_floor_import_fails(tmp_path: Path) -> None:
    floors: list[tuple[str, ...]] = [("low",), ("mid", "top")]
    _plant(tmp_path, CLEAN)
    graph = import_graph(tmp_path, ["low", "mid", "top"])
    assert back_arrows(graph, floors) == ["top.t -> mid.m"]


def test_planted_cycle_fails(tmp_path: Path) -> None:
    _plant(tmp_path, {**CLEAN, "low/a.py": "def g():\n    import low.b\n"})  # a -> b -> a
    graph = import_graph(tmp_path, ["low", "mid", "top"])
    assert back_arrows(graph, PLANTED_FLOORS) == []
    assert find_cycle(graph) in (["low.a", "low.b", "low.a"], ["low.b", "low.a", "low.b"])


def test_synthetic_graph_cycle_of_three() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert find_cycle(graph) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({"p.a": {"p.b"}, "p.b": set(), "p.d": {"p.a", "p.b"}}) is None


@pytest.fixture(scope="module")
def real_graph() -> dict[str, set[str]]:
    return import_graph(ROOT, [p for names in FLOORS for p in names])


def test_real_tree_has_no_back_arrow(real_graph: dict[str, set[str]]) -> None:
    assert "services.actions" in real_graph and "bml_core.config" in real_graph  # the tree was read
    assert sorted(back_arrows(real_graph, FLOORS)) == sorted(KNOWN_BACK_ARROWS)


def test_real_tree_has_no_import_cycle(real_graph: dict[str, set[str]]) -> None:
    assert find_cycle(real_graph) is None


def cross_page_imports(graph: dict[str, set[str]]) -> list[str]:
    """`app.views.<a>...` importing `app.views.<b>...` with a != b: what pages share lives at
    app/ level (app/text.py, app/address.py, app/progress.py ...), never in another page."""

    def page(mod: str) -> str | None:
        parts = mod.split(".")
        return parts[2] if len(parts) > 2 and parts[:2] == ["app", "views"] else None

    return sorted(
        f"{mod} -> {target}"
        for mod, targets in graph.items()
        for target in targets
        if page(mod) and page(target) and page(mod) != page(target)
    )


def test_planted_cross_page_import_fails() -> None:
    graph = {"app.views.report.page": {"app.views.compare.data", "app.text"}, "app.views.compare.data": set()}
    assert cross_page_imports(graph) == ["app.views.report.page -> app.views.compare.data"]


def test_no_page_imports_another_page(real_graph: dict[str, set[str]]) -> None:
    assert "app.views.report.page" in real_graph
    assert cross_page_imports(real_graph) == []
