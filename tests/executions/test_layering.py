"""Dependencies point one way: ``realtime`` uses ``executions``, never the reverse,
not even in a function-level import."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORTERS = {"import_module", "__import__"}


def realtime_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Each ``(line, module)`` of ``tree`` that imports ``realtime`` or a module of it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and _called_name(node) in IMPORTERS and node.args:
            first = node.args[0]
            names = [first.value] if isinstance(first, ast.Constant) else []
        else:
            continue
        found += [(node.lineno, name) for name in names if _is_realtime(name)]
    return found


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _is_realtime(name) -> bool:
    return isinstance(name, str) and (name == "realtime" or name.startswith("realtime."))


@pytest.mark.parametrize(
    "source",
    [
        "import realtime.events",
        "from realtime import publish",
        "def f():\n    from realtime.publish import after_pushes",
        "importlib.import_module('realtime.longpoll')",
    ],
)
def test_each_way_of_importing_realtime_is_found(source):
    assert realtime_imports(ast.parse(source))


def test_no_module_of_executions_imports_realtime():
    modules = sorted((ROOT / "executions").rglob("*.py"))
    assert len(modules) > 50
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules
        for line, name in realtime_imports(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert found == []
