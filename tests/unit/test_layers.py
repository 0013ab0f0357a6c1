"""Which part of worker/ may import which: no cycle between its parts, and no import upwards.

Every import counts, at module level, inside a function or under TYPE_CHECKING: each is a
dependency a reader has to follow. A part is a subpackage (worker/consume/) or a top-level module
(worker/types.py). When a check fails, either the import is wrong (inject the thing from above,
or move it down), or LAYERS is, and its entry says why it changed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

WORKER = Path(__file__).parents[2] / "worker"
ROOT = "worker.__init__"  # worker/__init__.py, which holds only __version__

# Lowest first. A module is in the layer of the longest prefix naming it (worker.roi.methodology
# is base, the rest of worker.roi is with the stores); it may import from its own layer and the
# layers below, never above.
LAYERS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "base",
        (
            ROOT,
            "worker.types",
            "worker.errors",
            "worker.redaction",
            "worker.contract",
            "worker.roi.methodology",
            "worker.roi.formatting",
        ),
        "pure values and rules: the event contract, the ROI methodology, the error kinds; "
        "no I/O, no configuration, so everything can use them and tests need no service",
    ),
    (
        "configuration",
        ("worker.settings", "worker.process"),
        "what the environment says and how a process logs and stops; settings name the "
        "methodology's defaults (min_executions), hence above base",
    ),
    (
        "stores",
        ("worker.db", "worker.kafka", "worker.roi"),
        "one I/O edge each: PostgreSQL, the Kafka client, the summaries with their reads and "
        "the report; they take settings and know nothing of the programs that use them",
    ),
    (
        "flow",
        ("worker.metrics", "worker.producer", "worker.consume"),
        "the consume loop and what it reports or publishes: built from the stores",
    ),
    (
        "operations",
        ("worker.ops",),
        "operator requests (replay, dead letters, offsets, retention) that reuse the consume "
        "flow's stages; the loop itself is given what it needs from here, never imports it",
    ),
    (
        "programs",
        ("worker.api", "worker.demo", "worker.schemas"),
        "each program's own assembly: the HTTP API, the demo, the published schemas (which "
        "include the API's OpenAPI document)",
    ),
    ("cli", ("worker.cli",), "argparse and rendering over everything below"),
    ("entry point", ("worker.__main__",), "`python -m worker`"),
)


class Edge(NamedTuple):
    """One import: `importer` (its file and line) imports `imported`."""

    importer: str
    imported: str
    where: str


def module_name(path: Path) -> str:
    """worker/roi/report.py -> worker.roi.report; worker/api/__init__.py -> worker.api."""
    parts = list(path.relative_to(WORKER.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(WORKER.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The module `name` loads: itself, or the package holding it when it names an attribute
    (from worker import __version__)."""
    while name not in MODULES:
        if name == "worker":
            return ROOT
        name = name.rpartition(".")[0]
    return name


def _imported_names(node: ast.Import | ast.ImportFrom, importer: str) -> Iterable[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    module = node.module or ""
    if node.level:  # relative: from the importer's package, up level - 1
        is_package = MODULES[importer].name == "__init__.py"
        package = importer.removesuffix(".__init__") if is_package else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        module = f"{package}.{module}" if module else package
    for alias in node.names:
        yield f"{module}.{alias.name}"


def imports() -> list[Edge]:
    """Every import of one worker module by another, wherever it is in the file."""
    edges = []
    for importer, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported_names(node, importer):
                if name == "worker" or name.startswith("worker."):
                    where = f"{path.relative_to(WORKER.parent)}:{node.lineno}"
                    edges.append(Edge(importer, _resolve(name), where))
    return list(dict.fromkeys(edges))  # one per module a line names


def layer_of(module: str) -> int:
    """The index in LAYERS of the longest prefix naming `module`; KeyError if none does."""
    found = [
        (len(prefix), index)
        for index, (_, prefixes, _) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not found:
        raise KeyError(module)
    return max(found)[1]


def part_of(module: str) -> str:
    """worker.consume.write -> worker.consume; worker.types -> worker.types."""
    return ".".join(module.split(".")[:2])


def upward(edges: Iterable[Edge]) -> list[str]:
    """The imports of a module from a layer above its own."""
    return [
        f"{e.where}: {e.importer} ({LAYERS[layer_of(e.importer)][0]}) imports {e.imported} "
        f"({LAYERS[layer_of(e.imported)][0]})"
        for e in edges
        if layer_of(e.imported) > layer_of(e.importer)
    ]


def cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """The sets of parts that import each other, directly or not (strongly connected
    components of more than one part, by Tarjan's algorithm), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        source, target = part_of(e.importer), part_of(e.imported)
        graph.setdefault(source, set())
        graph.setdefault(target, set())
        if source != target:
            graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _explain(component: list[str], edges: Iterable[Edge]) -> str:
    """The parts of `component` and, for each import between two of them, its first place."""
    first: dict[tuple[str, str], Edge] = {}
    for e in edges:
        pair = (part_of(e.importer), part_of(e.imported))
        if pair[0] != pair[1] and set(pair) <= set(component):
            first.setdefault(pair, e)
    return " <-> ".join(component) + "".join(
        f"\n  {a} -> {b}  ({e.where}: {e.importer} -> {e.imported})"
        for (a, b), e in sorted(first.items())
    )


def test_every_module_has_a_layer() -> None:
    """A new part of worker/ needs its place in LAYERS, and why."""
    assert {ROOT, "worker.types", "worker.api.app", "worker.__main__"} <= set(MODULES)
    assert [m for m in MODULES if not _has_layer(m)] == []


def _has_layer(module: str) -> bool:
    try:
        layer_of(module)
    except KeyError:
        return False
    return True


def test_no_part_imports_from_a_layer_above_its_own() -> None:
    found = upward(imports())
    assert found == [], "imports from a higher layer (see LAYERS):\n" + "\n".join(found)


def test_no_import_cycle_between_parts() -> None:
    edges = imports()
    found = cycles(edges)
    assert found == [], "parts importing each other:\n" + "\n".join(
        _explain(component, edges) for component in found
    )


def _edges(graph: Mapping[str, list[str]]) -> list[Edge]:
    return [Edge(a, b, "test") for a, targets in graph.items() for b in targets]


def test_the_checks_find_what_they_look_for() -> None:
    """The checks themselves, on made-up imports: a cycle through three parts, an import
    upwards, and a module of the same part importing another are told apart."""
    edges = _edges(
        {
            "worker.db.connect": ["worker.roi.summaries", "worker.db.migrate"],
            "worker.roi.summaries": ["worker.consume.write"],
            "worker.consume.write": ["worker.db.connect", "worker.types"],
            "worker.cli.main": ["worker.api.app"],
        }
    )
    assert cycles(edges) == [["worker.consume", "worker.db", "worker.roi"]]
    assert [line.split(": ")[1] for line in upward(edges)] == [
        "worker.roi.summaries (stores) imports worker.consume.write (flow)"
    ]
    assert layer_of("worker.roi.methodology") == 0
    assert layer_of("worker.roi.analytics") == layer_of("worker.db.connect")
    assert _resolve("worker.__version__") == ROOT
    assert _resolve("worker.contract.event.ExecutionEvent") == "worker.contract.event"


def test_the_package_imports_itself_only_relatively() -> None:
    """worker/ is shipped under a second name too, `roi_worker` (pyproject.toml), the import
    path workflows use: a module that named `worker` would load the other copy, or a workflow's
    own worker.py."""
    absolute = [
        f"{path.relative_to(WORKER.parent)}:{node.lineno}"
        for path in MODULES.values()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        )
        if name == "worker" or (name or "").startswith("worker.")
    ]
    assert not absolute, f"import worker's own modules relatively (from .x import y): {absolute}"
