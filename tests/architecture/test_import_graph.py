"""The import graph of the project's own modules: no circles, and Ray only where it belongs.

Built with `ast` from the source, so it sees every import, including those inside
functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("covidxr_core", "search_spaces", "tuning")
# The only modules that may import Ray: the Ray engine and the storage check.
RAY_ALLOWED = (
    "tuning.engines.ray_tune",
    "tuning.engines.ray_trial",
    "tuning.engines.ray_callbacks",
    "tuning.engines.ray_optuna",
    "tuning.engines.ray_warmup",
    "tuning.engines.ray_lifeline",
    "tuning.runfolder",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for package in PACKAGES
        for p in (REPO / package).rglob("*.py")
        if "templates" not in p.parts
    }


def _imports(name: str, path: Path) -> set[str]:
    """Every absolute module name ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(name, path):
            # `from tuning import x` depends on tuning, or on tuning.x if that is a module.
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_parent(a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_circle_among_the_projects_modules():
    graph = _graph()
    # A package's __init__ that re-exports its own submodules lazily is not a circle of
    # logic: drop edges between a package and its own children.
    pruned = {v: {w for w in ws if not _is_package_parent(v, w)} for v, ws in graph.items()}
    assert _cycles(pruned) == []


def test_the_graph_sees_real_imports():
    graph = _graph()
    # Guards against a parser that finds nothing and so finds no circle.
    assert "tuning.leaderboard" in graph["tuning.study"]
    assert "tuning.engines" in graph["tuning.engines.ray_tune"]
    assert sum(len(v) for v in graph.values()) > 50
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_ray_is_imported_only_by_the_ray_engine_and_the_storage_check():
    offenders = {
        name
        for name, path in _modules().items()
        if any(i == "ray" or i.startswith("ray.") for i in _imports(name, path))
        and name not in RAY_ALLOWED
    }
    assert offenders == set()


def test_leaderboard_and_reporting_import_no_ray_at_all():
    """Not even through another module of ours: follow the graph from each of them."""
    graph = _graph()
    modules = _modules()

    def reaches_ray(start: str) -> list[str]:
        seen, todo, chain = {start}, [start], []
        while todo:
            v = todo.pop()
            if any(i == "ray" or i.startswith("ray.") for i in _imports(v, modules[v])):
                chain.append(v)
            for w in graph[v] - seen:
                seen.add(w)
                todo.append(w)
        return chain

    starts = ["tuning.leaderboard"] + [m for m in modules if m.startswith("tuning.reporting")]
    assert len(starts) > 3, "tuning/reporting/ not found"
    assert {s: reaches_ray(s) for s in starts if reaches_ray(s)} == {}
