"""The package's shape, checked from its source: layers, no import cycles, no private imports.

Every module under ``src/zarrflow`` is parsed (never imported). An import is
an edge from the importing module to the module it names; ``from pkg import
name`` points at ``pkg.name`` when that is a module, else at ``pkg`` (its
``__init__``). Imports inside functions count as much as module-level ones:
a lazy import couples two modules at run time just the same, and hiding a
cycle behind one is how cycles come back. Imports under ``if TYPE_CHECKING:``
do not count: they never run.

The layers, top to bottom (imports point down, or within a layer)::

    integrations, cli, testing      (above the public face)
    api                             (and the package's __init__)
    hierarchy
    parallel
    chunks
    indexing
    codecs
    metadata
    storage
    errors, config, telemetry       (importable by all; they import only each other)
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = {
    "storage": 0,
    "metadata": 1,
    "codecs": 2,
    "indexing": 3,
    "chunks": 4,
    "parallel": 5,
    "hierarchy": 6,
    "api": 7,
    "integrations": 8,
    "cli": 8,
    "testing": 8,
}
BASE = ("errors", "config", "telemetry")  # importable by every layer


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of the package
    names: tuple[str, ...]  # names taken from it (``from target import names``)
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every module of ``package`` under ``root``."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _resolve_from(name: str, node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path], package: str) -> list[Import]:
    """The package-internal imports a module makes at run time."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Import] = []
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package and alias.name in modules:
                    found.append(Import(name, alias.name, (), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(name, node, path)
            if source.split(".")[0] != package:
                continue
            plain = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:
                    found.append(Import(name, sub, (), node.lineno))
                else:
                    plain.append(alias.name)
            if plain:
                found.append(Import(name, source, tuple(plain), node.lineno))
    return found


def module_aliases(name: str, path: Path, modules: dict[str, Path]) -> dict[str, str]:
    """Local names bound to package modules (``from zarrflow.parallel import stream``)."""
    tree = ast.parse(path.read_text())
    aliases = {}
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(name, node, path)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
    return aliases


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
            if len(component) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"  # the package's __init__: the public face
    head = parts[1]
    if head in BASE:
        return head
    if head == "__main__":
        return "cli"
    return head


def analyse(root: Path, package: str) -> dict[str, list]:
    """Cycles, private imports and upward imports of ``package`` under ``root``."""
    modules = find_modules(root, package)
    all_imports = [i for m, p in modules.items() for i in imports_of(m, p, modules, package)]
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for i in all_imports:
        if i.target != i.importer:
            graph[i.importer].add(i.target)
    private = [
        f"{i.importer}:{i.line} imports {n!r} from {i.target}"
        for i in all_imports
        for n in i.names
        if n.startswith("_") and not n.startswith("__")
    ]
    for name, path in modules.items():
        aliases = module_aliases(name, path, modules)
        for node in _walk_runtime(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != name
            ):
                private.append(f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    upward = []
    for i in all_imports:
        src, dst = layer_of(i.importer), layer_of(i.target)
        if dst in BASE:
            continue
        if src in BASE or (src in LAYERS and dst in LAYERS and LAYERS[dst] > LAYERS[src]):
            upward.append(f"{i.importer}:{i.line} ({src}) imports {i.target} ({dst})")
    return {
        "modules": sorted(modules),
        "cycles": find_cycles(graph),
        "private": private,
        "upward": upward,
    }


@pytest.fixture(scope="module")
def zarrflow_shape():
    return analyse(SRC, "zarrflow")


def test_every_layer_is_found(zarrflow_shape):
    layers = {layer_of(m) for m in zarrflow_shape["modules"]}
    assert set(LAYERS) | set(BASE) <= layers, layers


def test_no_import_cycles(zarrflow_shape):
    assert zarrflow_shape["cycles"] == []


def test_no_module_imports_a_private_name_of_another(zarrflow_shape):
    assert zarrflow_shape["private"] == []


def test_imports_point_down_the_layers(zarrflow_shape):
    assert zarrflow_shape["upward"] == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        target = tmp_path / "pkg" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return tmp_path


def test_the_checks_catch_what_they_are_for(tmp_path):
    """Each check fails on a small package built to break it (so a pass means something)."""
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "storage/__init__.py": "",
            "storage/base.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.chunks.io import Engine\n"  # does not count
                "def f():\n    from pkg.chunks import io\n    return io._secret\n"
            ),
            "chunks/__init__.py": "",
            "chunks/io.py": "from pkg.storage.base import _helper\nfrom pkg.errors import E\n",
        },
    )
    found = analyse(root, "pkg")
    assert found["cycles"] == [["pkg.chunks.io", "pkg.storage.base"]]
    assert found["private"] == [
        "pkg.chunks.io:1 imports '_helper' from pkg.storage.base",
        "pkg.storage.base:6 uses pkg.chunks.io._secret",
    ]
    assert found["upward"] == ["pkg.storage.base:5 (storage) imports pkg.chunks.io (chunks)"]
