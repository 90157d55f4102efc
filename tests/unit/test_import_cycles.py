"""No import cycle inside ``pgingest``: every import counts, those inside functions (lazy) and
under ``TYPE_CHECKING`` too, since a cycle there is still two modules that need each other."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import grimp
import pytest


def import_cycles(package: str) -> list[list[str]]:
    """The groups of modules of ``package`` that import each other, directly or not
    (the strongly connected components of its import graph with more than one module, or one
    module importing itself), each sorted."""
    graph = grimp.build_graph(package, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        # Tarjan's algorithm, iterative: a deep package must not hit the recursion limit.
        work = [(module, iter(sorted(graph.find_modules_directly_imported_by(module))))]
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph.find_modules_directly_imported_by(node):
                    cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return sorted(cycles)


def test_pgingest_has_no_import_cycle():
    assert import_cycles("pgingest") == []


@pytest.fixture
def cyclic_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package whose only cycle goes through a function-level import and a TYPE_CHECKING one."""
    root = tmp_path / "cyclic_pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text(
        textwrap.dedent(
            """
            def f():
                from cyclic_pkg import b
                return b
            """
        )
    )
    (root / "b.py").write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from cyclic_pkg.c import C
            """
        )
    )
    (root / "c.py").write_text("import cyclic_pkg.a\nclass C: ...\n")
    (root / "d.py").write_text("import cyclic_pkg.c\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "cyclic_pkg"
    for name in [m for m in sys.modules if m.startswith("cyclic_pkg")]:
        del sys.modules[name]


def test_the_check_sees_lazy_and_type_checking_imports(cyclic_package: str):
    assert import_cycles(cyclic_package) == [["cyclic_pkg.a", "cyclic_pkg.b", "cyclic_pkg.c"]]
