"""The shape of first-party code: no import cycles, and no module over 400 lines.

An import cycle works until someone imports the two modules in the other order (then a name is
missing at import time), and it hides which module is the lower layer: ``http`` and ``ssrf`` used to
import each other, patched over with a function-level import. A module over 400 lines is a module
doing several jobs. Both rules are checked on the source, with ``ast``, so they hold for code no test
happens to import.
"""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
#: Modules still over the limit while their owners split them (issue 12). The list may only shrink:
#: the test fails when a listed module is back under the limit or gone, so the entry must be removed.
KNOWN_OVERSIZED: set[str] = set()


def _package_roots() -> dict[str, Path]:
    """First-party top-level packages, found the way the build finds them (pyproject.toml), so a new
    package is covered without editing this test."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    roots: dict[str, Path] = {}
    for where in config["where"]:
        for candidate in sorted((ROOT / where).iterdir()):
            if (candidate / "__init__.py").is_file() and any(
                    fnmatch.fnmatch(candidate.name, pattern) for pattern in config["include"]):
                roots[candidate.name] = candidate
    return roots


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every first-party module."""
    found: dict[str, Path] = {}
    for name, root in _package_roots().items():
        for path in sorted(root.rglob("*.py")):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported: not function bodies, not ``if TYPE_CHECKING``."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_time_statements(block)
        elif isinstance(node, ast.ClassDef | ast.With):
            yield from _import_time_statements(node.body)


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """First-party modules that importing ``module`` imports directly."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_time_statements(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & known
            # ``from pkg import submodule`` depends on the submodule; ``from pkg import name`` on pkg.
            targets.update(submodules or {source})
    return {target for target in targets if target in known and target != module}


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_structure_checks_see_every_first_party_package() -> None:
    graph = _import_graph()
    assert {"clientreg", "clientreg_operator", "clientreg_pulumi"} <= {m.split(".")[0] for m in graph}
    # The graph is real: the HTTP client depends on the address rules it shares with the SSRF guard.
    assert "clientreg._addresses" in graph["clientreg.http"] | graph["clientreg._transport"]
    assert "clientreg._addresses" in graph["clientreg.ssrf"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_first_party_code_has_no_import_cycle() -> None:
    cycles = _cycles(_import_graph())
    assert cycles == [], f"import cycles among first-party modules (module-level imports): {cycles}"


def _line_counts() -> dict[str, int]:
    return {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines()) for path in _modules().values()}


def test_no_first_party_module_is_over_400_lines() -> None:
    counts = _line_counts()
    oversized = {path for path, lines in counts.items() if lines > MAX_LINES}
    new = {path: counts[path] for path in sorted(oversized - KNOWN_OVERSIZED)}
    assert not new, f"modules over {MAX_LINES} lines (split them along their responsibilities): {new}"


def test_the_oversized_allow_list_only_shrinks() -> None:
    counts = _line_counts()
    stale = {path: counts.get(path) for path in sorted(KNOWN_OVERSIZED) if counts.get(path, 0) <= MAX_LINES}
    assert not stale, f"remove from KNOWN_OVERSIZED (gone, or now within {MAX_LINES} lines): {stale}"


def test_test_modules_have_unique_names_across_suites() -> None:
    """Test modules are not packages (rootdir import mode): two files of one name in tests/unit and tests/e2e
    make `pytest tests` stop at collection, which a run of one folder never shows."""
    tests = Path(__file__).resolve().parents[1]
    seen: dict[str, list[str]] = {}
    for path in tests.glob("*/test_*.py"):
        seen.setdefault(path.name, []).append(path.parent.name)
    assert not {name: where for name, where in seen.items() if len(where) > 1}
