"""Imports in ``shared/tagsmith`` point one way: a test walks the module-level import graph (type-only
imports under ``if TYPE_CHECKING:`` included) and fails on any cycle, naming its modules; a second
walk adds the imports inside functions, so a cycle cannot hide behind a late import either."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "tagsmith"


def _modules(package: Path) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _top_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported (or type-checked): not those inside functions."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try | ast.With):
            yield from _top_level(node.body)
            yield from _top_level(getattr(node, "orelse", []))
            yield from _top_level(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)


def _everywhere(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, those inside functions and methods included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def import_graph(package: Path = PACKAGE, *, inside_functions: bool = False) -> dict[str, set[str]]:
    """Each module and the package modules it imports at module level (``inside_functions``: or
    anywhere)."""
    modules = _modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        for node in _everywhere(tree) if inside_functions else _top_level(tree.body):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            if node.level:  # a relative import
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in modules else source)
        edges = set()
        for target in targets:
            parts = target.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ first; a package's own modules
            # importing one another while it initialises is the normal order, not a cycle
            for i in range(2, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                    edges.add(prefix)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_library_has_no_import_cycle() -> None:
    graph = import_graph()
    assert graph.get("tagsmith.ingest"), "the walk found the modules and their imports"

    assert cycles(graph) == []


def test_no_import_cycle_hides_behind_an_import_inside_a_function() -> None:
    graph = import_graph(inside_functions=True)

    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_through_a_type_only_import(tmp_path: Path) -> None:
    # GIVEN a package whose two modules import each other, one of them only for type checking
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import B\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\nclass B: ...\n"
    )
    (package / "c.py").write_text("def late():\n    from pkg import a\n")  # inside a function: not counted

    graph = import_graph(package)

    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert graph["pkg.c"] == set()
    assert import_graph(package, inside_functions=True)["pkg.c"] == {"pkg.a"}


def _module_map() -> list[set[str]]:
    """The rows of the module map that opens docs/architecture.md, top (entry points) first, as
    top-level module or package names; descriptions in parentheses are not names."""
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    block = doc.split("## Module map", 1)[1].split("```", 2)[1]
    names = {m.split(".")[1] for m in _modules(PACKAGE) if "." in m}
    rows: list[set[str]] = []
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        if not line.startswith(" "):
            rows.append(set())
        text = re.sub(r"\([^)]*\)", "", line)
        rows[-1].update(w for w in re.findall(r"[a-z_]+", text) if w in names)
    return rows


def test_the_module_map_in_architecture_md_matches_the_imports() -> None:
    rows = _module_map()
    row_of = {name: i for i, row in enumerate(rows) for name in row}
    every = {m.split(".")[1] for m in _modules(PACKAGE) if "." in m}
    assert set(row_of) == every, f"modules missing from the map: {sorted(every - set(row_of))}"

    upward = sorted(
        f"{a} (row {row_of[a.split('.')[1]]}) imports {b} (row {row_of[b.split('.')[1]]})"
        for a, targets in import_graph().items()
        for b in targets
        if "." in a and "." in b and row_of[b.split(".")[1]] < row_of[a.split(".")[1]]
    )
    assert upward == []
