"""The layout shows the architecture: imports flow one way (producer <- models <- worker <- cli),
nothing imports the command line, and no two modules or worker folders import each other in a
circle (docs/architecture.md has the table)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("producer", "models", "worker", "cli")
#: Each top-level package and the project packages it may import.
MAY_IMPORT = {
    "producer": {"producer"},
    "models": {"producer", "models"},
    "worker": {"producer", "models", "worker"},
    "cli": {"producer", "models", "worker", "cli"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(top_level_only: bool) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name imported from a package that is a
    submodule counts as that submodule, not the package)."""
    modules = _modules()

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                names = [n for n in subs if n in modules] or [node.module]
            else:
                continue
            graph[module] |= {r for n in names if (r := resolve(n)) and r != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if not state.get(nxt) and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if not state.get(start) and (found := visit(start, [start])):
            return found
    return None


def _folder(module: str) -> str:
    """`worker.writeback.targets.github` -> `worker.writeback`: worker's folders are its units."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "worker" and len(parts) > 2 else module


def test_imports_flow_one_way_and_nothing_imports_the_command_line() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _imports(top_level_only=False).items()
        for target in targets
        if target.split(".")[0] not in MAY_IMPORT[module.split(".")[0]]
    )
    assert wrong == []


def test_no_module_imports_itself_in_a_circle() -> None:
    assert _cycle(_imports(top_level_only=True)) is None


def test_no_two_worker_folders_depend_on_each_other() -> None:
    folders: dict[str, set[str]] = defaultdict(set)
    for module, targets in _imports(top_level_only=False).items():
        if module.startswith("worker."):
            folders[_folder(module)] |= {
                _folder(t)
                for t in targets
                if t.startswith("worker.") and _folder(t) != _folder(module)
            }
    assert _cycle(folders) is None


def test_the_checks_see_a_circle_when_there_is_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
