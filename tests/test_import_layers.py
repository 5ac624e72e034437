"""No import circles, lazy (function-level) imports included: lower layers never import upward.

:data:`LAYERS` is the package's layer order, lowest first. A module may import modules of its own layer
or of any layer below; never one above. Within a layer, module imports must not form a circle. Every
``matseg_nb`` module must belong to a layer, so a new package gets its place here on purpose.

Read from the source with :mod:`ast` (nothing is imported), every ``import`` statement counts, at module
level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "matseg_nb"

#: the layers, lowest first: (name, module prefixes) — a prefix names a module or a whole sub-package
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base: errors, files, units, figures", ("matseg_nb", "matseg_nb.errors", "matseg_nb.atomic", "matseg_nb.clock", "matseg_nb.progress",
                                            "matseg_nb.jsonio", "matseg_nb.vocabulary", "matseg_nb.metrics",
                                            "matseg_nb.figures", "matseg_nb.jsonschema_export",
                                            "matseg_nb.weights_cache", "matseg_nb.micronet", "matseg_nb.terminal")),
    ("data: datasets, formats, readers", ("matseg_nb.data",)),
    # provenance lists a loop's dataset files (data) in its RO-Crate; the report stage and exports call it
    ("provenance: RO-Crate of a result folder", ("matseg_nb.provenance",)),
    ("profiles: what to train", ("matseg_nb.profiles",)),
    ("runs: the run-folder format", ("matseg_nb.runs", "matseg_nb.run_marker")),
    ("models: build, load, tile", ("matseg_nb.models",)),
    ("training: one job", ("matseg_nb.training",)),
    ("sweep: many jobs", ("matseg_nb.sweep",)),
    # qc.settings: the QCSettings record (base layer imports only) that the loop's stage settings hold
    ("loop: layout and stage settings", ("matseg_nb.loop", "matseg_nb.qc.settings")),
    ("analyses: qc, explain", ("matseg_nb.qc", "matseg_nb.explain")),
    # segment screens with qc; compare reads segment's measurement bias (compare.measurement)
    ("deployment: segment, suggest", ("matseg_nb.segment", "matseg_nb.suggest")),
    ("compare: tables, statistics, recommendation", ("matseg_nb.compare",)),
    # export's model card states test-metric intervals and unlearned classes with compare's statistics
    ("export: a run as a standalone model or package", ("matseg_nb.export",)),
    ("report", ("matseg_nb.report",)),
    ("pipeline: the loop's stages", ("matseg_nb.pipeline",)),
    ("dashboard actions", ("matseg_nb.dashboard",)),
    ("widgets", ("matseg_nb.widgets",)),
    # entry points: ``python -m matseg_nb`` and ``python -m matseg_nb.sweep`` call the cli
    ("commands and cli", ("matseg_nb.commands", "matseg_nb.cli", "matseg_nb.__main__", "matseg_nb.sweep.__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The ``matseg_nb`` modules ``path`` imports (anywhere in the file), each resolved to a known module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([base] if base else [])])
            # "from pkg import mod" imports the module; "from pkg import name" imports pkg itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("matseg_nb") and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, name, known) for name, path in mods.items()}


def layer_of(module: str) -> int | None:
    best, best_len = None, -1
    for i, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            hit = module == prefix or (prefix != "matseg_nb" and module.startswith(prefix + "."))
            if hit and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    missing = sorted(m for m in modules() if layer_of(m) is None)
    assert not missing, f"give these modules a place in LAYERS: {missing}"


def test_no_module_imports_a_higher_layer():
    upward = sorted(f"{a} (layer {LAYERS[layer_of(a)][0]!r}) imports {b} (layer {LAYERS[layer_of(b)][0]!r})"
                    for a, targets in graph().items() for b in targets
                    if layer_of(a) is not None and layer_of(b) is not None and layer_of(b) > layer_of(a))
    assert not upward, "\n".join(upward)


def test_no_import_circles_lazy_ones_included():
    found = circles(graph())
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_the_checker_sees_a_circle_and_an_upward_edge(tmp_path):
    """The check can fail: a two-module circle and an upward import are found."""
    assert circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert layer_of("matseg_nb.data.readers") < layer_of("matseg_nb.report.answer")
    assert layer_of("matseg_nb.sweep.__main__") > layer_of("matseg_nb.sweep.api")
    assert layer_of("matseg_nb.widgets.dashboard_app") > layer_of("matseg_nb.dashboard.actions")
