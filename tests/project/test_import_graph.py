"""The project's modules import one another without a cycle, counting the imports
made inside functions: a backend chosen by a setting is loaded by its import
path, never imported by what calls it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("executions", "realtime", "project", "dashboard")


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, tuple[Path, bool]]:
    """Every module of ``packages`` by dotted name: its file, and whether it is a package."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement may bind: modules, or names in them."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Each module and the project modules it imports, wherever in it the import is."""
    modules = module_files(root, packages)

    def resolve(name: str) -> str | None:
        # ``from a.b import c``: the module ``a.b.c`` if there is one, else ``a.b``.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, (path, is_package) in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = imported(node, module, is_package)
                if isinstance(node, ast.ImportFrom):
                    # The names a ``from`` import binds that are modules; else its module.
                    submodules = [name for name in names[1:] if name in modules]
                    names = submodules if len(submodules) == len(names) - 1 else names
                targets.update(filter(None, map(resolve, names)))
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as the modules along it (the first one repeated), or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(module: str) -> list[str] | None:
        path.append(module)
        on_path.add(module)
        for target in sorted(graph[module]):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done and (cycle := visit(target)):
                return cycle
        path.pop()
        on_path.discard(module)
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done and (cycle := visit(module)):
            return cycle
    return None


def test_no_module_imports_itself_through_others():
    graph = import_graph()

    assert len(graph) > 100  # every module was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_services_reach_the_runner_through_its_base_only():
    graph = import_graph()
    services = [module for module in graph if module.startswith("executions.services")]
    reached = {target for module in services for target in graph[module]}

    assert {"executions.runners"} <= reached
    assert not {target for target in reached if target.startswith("executions.runners.")}
    assert not {t for t in graph["executions.runners"] if t != "executions.runners.base"}


def test_the_engine_imports_no_dispatch_code():
    graph = import_graph()
    engine = [module for module in graph if module.startswith("executions.engine")]

    assert not {t for m in engine for t in graph[m] if t.startswith("executions.runners")}


@pytest.mark.parametrize(
    "edges, cycle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_a_cycle_is_found_and_named(edges, cycle):
    assert find_cycle(edges) == cycle


def test_imports_made_inside_functions_count(tmp_path):
    (tmp_path / "executions").mkdir()
    for name, text in {
        "__init__.py": "",
        "models.py": "def f():\n    from executions import states\n",
        "states.py": "from .models import f\n",
    }.items():
        (tmp_path / "executions" / name).write_text(text)

    graph = import_graph(tmp_path, ("executions",))

    assert graph["executions.models"] == {"executions.states"}
    assert graph["executions.states"] == {"executions.models"}
    assert find_cycle(graph) == ["executions.models", "executions.states", "executions.models"]
