import pytest

from executions.engine.registry import get_node_type, node_type_names, register, unregister

BUILT_IN_MODULES = "executions.engine.nodes."


@pytest.fixture
def built_in_registry():
    """Only the types of ``executions.engine.nodes``, whatever other test modules registered."""
    others = [type(get_node_type(name)) for name in node_type_names()]
    others = [cls for cls in others if not cls.__module__.startswith(BUILT_IN_MODULES)]
    for node_class in others:
        unregister(node_class)
    yield
    for node_class in others:
        register(node_class)
