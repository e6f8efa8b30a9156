"""No import cycles between rankwise modules, counting imports deferred into functions.

A deferred import is for cost (torch, textual) only; one that closes a cycle hides a piece that
belongs in a third module both can import. Imports under `if TYPE_CHECKING:` do not count.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"advisor": "rankwise.advisor", "trainer": "rankwise.trainer", "tui": "rankwise.tui"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _targets(name: str, path: Path, node: ast.AST, modules: dict) -> list[str]:
    """The rankwise modules an import statement loads (`from .x import y` may name module x.y)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
    target = ".".join(p for p in (base, node.module or "") if p)
    out = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
    return [t for t in out if t in modules and t != name]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                       for n in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only:
                graph[name].update(_targets(name, path, node, modules))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_deferred_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    tree = _graph()
    assert "rankwise.tui.screens.advice" in tree["rankwise.tui.app"]  # the router names its screens


def test_no_import_cycles():
    assert _cycles(_graph()) == []
