"""Workflow definition validation (``executions.engine.graph``) and the node registry."""

import itertools
from typing import ClassVar

import pytest
from rest_framework import serializers

# Registers another app's node types, so the checks of the built-in types below always run
# with foreign types in the registry, as in any run that imports it elsewhere.
import tests.executions.nodes  # noqa: F401
from executions.engine.graph import MAX_NODES, InvalidDefinition, parse_definition
from executions.engine.registry import (
    NodeType,
    get_node_type,
    node_type_names,
    register,
    registered,
    unregister,
)
from executions.exceptions import ExecutionsError
from tests.factories import chain, node


def edge(source, target) -> dict:
    return {"source": source, "target": target}


def errors_of(definition) -> list[str]:
    with pytest.raises(InvalidDefinition) as caught:
        parse_definition(definition)
    return caught.value.errors


# --- valid definitions ----------------------------------------------------------


def test_diamond_graph_structure():
    graph = parse_definition(
        {
            "nodes": [
                node("start", "delay", seconds=0),
                node("left", "transform", expression="a"),
                node("right", "log", message="m"),
                node("join", "transform", expression="@"),
            ],
            "edges": [
                edge("start", "left"),
                edge("start", "right"),
                edge("left", "join"),
                edge("right", "join"),
            ],
        }
    )

    assert list(graph.nodes) == ["start", "left", "right", "join"]
    assert graph.roots == ["start"]
    assert graph.sinks == ["join"]
    assert graph.children["start"] == ["left", "right"]
    assert graph.parents["join"] == ["left", "right"]
    assert graph.parents["start"] == []
    assert graph.nodes["left"].node_type is get_node_type("transform")


def test_edges_are_optional_and_every_lone_node_is_root_and_sink():
    graph = parse_definition(
        {"nodes": [node("a", "delay", seconds=1), node("b", "fail", message="x")]}
    )

    assert graph.roots == ["a", "b"]
    assert graph.sinks == ["a", "b"]


def test_params_are_cleaned_with_defaults():
    graph = parse_definition(chain(node("l", "log", message="hi")))

    assert graph.nodes["l"].params == {"message": "hi", "level": "info"}


def test_missing_params_are_an_empty_object():
    errors = errors_of({"nodes": [{"id": "w", "type": "delay"}]})

    assert errors == ["node 'w' (delay): params.seconds: This field is required."]


@pytest.mark.parametrize("seconds", [0, 0.001, 0.5, 2.75, 3600, 3600.0])
def test_delay_accepts_numbers_in_range(seconds):
    graph = parse_definition(chain(node("w", "delay", seconds=seconds)))

    assert graph.nodes["w"].params == {"seconds": seconds}


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        ("5", "A valid number is required."),
        ("0.5", "A valid number is required."),
        (True, "A valid number is required."),
        (False, "A valid number is required."),
        ([1], "A valid number is required."),
        (None, "This field may not be null."),
        (-1, "Ensure this value is greater than or equal to 0."),
        (-0.001, "Ensure this value is greater than or equal to 0."),
        (3601, "Ensure this value is less than or equal to 3600."),
        (3600.5, "Ensure this value is less than or equal to 3600."),
    ],
)
def test_delay_rejects_bad_seconds(seconds, message):
    assert errors_of(chain(node("w", "delay", seconds=seconds))) == [
        f"node 'w' (delay): params.seconds: {message}"
    ]


@pytest.mark.parametrize("expression", ["a.b", "items[?x > `1`].name", "@", "{k: v}"])
def test_transform_accepts_valid_jmespath(expression):
    assert parse_definition(chain(node("t", "transform", expression=expression)))


@pytest.mark.parametrize("expression", ["foo[", "a..b", "[?", "{k: }"])
def test_transform_rejects_invalid_jmespath(expression):
    (error,) = errors_of(chain(node("t", "transform", expression=expression)))

    assert error.startswith(
        "node 't' (transform): params.expression: not a valid JMESPath expression"
    )


@pytest.mark.parametrize("level", ["info", "warning", "error"])
def test_log_accepts_each_level(level):
    graph = parse_definition(chain(node("l", "log", message="m", level=level)))

    assert graph.nodes["l"].params["level"] == level


@pytest.mark.parametrize("level", ["debug", "INFO", "", 1, None])
def test_log_rejects_other_levels(level):
    (error,) = errors_of(chain(node("l", "log", message="m", level=level)))

    assert error.startswith("node 'l' (log): params.level:")


@pytest.mark.parametrize("message", [1, None, ["a"], {"a": 1}])
def test_fail_message_must_be_a_string(message):
    (error,) = errors_of(chain(node("f", "fail", message=message)))

    assert error.startswith("node 'f' (fail): params.message:")


def test_unknown_params_are_named():
    assert errors_of(chain(node("w", "delay", seconds=1, zeta=1, alpha=2))) == [
        "node 'w' (delay): params: unknown keys ['alpha', 'zeta']; allowed: ['seconds']."
    ]


# --- structural mistakes --------------------------------------------------------


@pytest.mark.parametrize("definition", [None, [], "nodes", 3])
def test_definition_must_be_an_object(definition):
    assert errors_of(definition) == ["definition must be a JSON object with 'nodes' and 'edges'."]


@pytest.mark.parametrize("nodes", [None, [], {}, "a"])
def test_nodes_must_be_a_non_empty_list(nodes):
    assert errors_of({"nodes": nodes}) == ["definition.nodes must be a non-empty list of nodes."]


def test_too_many_nodes():
    nodes = [node(f"n{i}", "delay", seconds=0) for i in range(MAX_NODES + 1)]

    (error,) = errors_of({"nodes": nodes})

    assert f"at most {MAX_NODES}" in error


@pytest.mark.parametrize("node_id", ["", "   ", 5, None, "x" * 101])
def test_node_id_must_be_a_short_non_empty_string(node_id):
    (error,) = errors_of({"nodes": [{"id": node_id, "type": "delay", "params": {"seconds": 1}}]})

    assert error == "nodes[0].id must be a non-empty string of at most 100 characters."


def test_duplicate_node_id():
    errors = errors_of(chain(node("a", "delay", seconds=1), node("a", "log", message="m")))

    assert errors == ["node 'a': duplicate node id; every node needs its own id."]


@pytest.mark.parametrize("node_type", ["sleep", "", None, 3, ["delay"]])
def test_unknown_node_type(built_in_registry, node_type):
    (error,) = errors_of({"nodes": [{"id": "x", "type": node_type, "params": {}}]})

    assert error == (
        f"node 'x': unknown type {node_type!r}; "
        "known types: condition, delay, fail, http_request, log, transform."
    )


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ([edge("a", "ghost")], "edges[0]: 'ghost' is not a node of this workflow."),
        ([edge("ghost", "a")], "edges[0]: 'ghost' is not a node of this workflow."),
        ([edge("x", "y")], "edges[0]: 'x', 'y' is not a node of this workflow."),
        ([edge("a", 1)], "edges[0]: 1 is not a node of this workflow."),
        ([edge("a", ["b"])], "edges[0]: ['b'] is not a node of this workflow."),
        ([{"source": "a"}], "edges[0] must be an object with exactly 'source' and 'target'."),
        (
            [{"source": "a", "target": "b", "weight": 1}],
            "edges[0] must be an object with exactly 'source' and 'target'.",
        ),
        (["a->b"], "edges[0] must be an object with exactly 'source' and 'target'."),
        ([edge("a", "b"), edge("a", "b")], "edges[1]: duplicate edge a -> b."),
    ],
)
def test_bad_edges(edges, expected):
    definition = {"nodes": [node("a", "delay", seconds=1), node("b", "delay", seconds=1)]}

    assert errors_of({**definition, "edges": edges}) == [expected]


@pytest.mark.parametrize("edges", [None, {}, "a->b"])
def test_edges_must_be_a_list(edges):
    errors = errors_of({"nodes": [node("a", "delay", seconds=1)], "edges": edges})

    assert errors == ["definition.edges must be a list of {'source', 'target'} objects."]


def test_unknown_keys_are_named():
    errors = errors_of(
        {"nodes": [{**node("a", "delay", seconds=1), "label": "A"}], "edges": [], "meta": {}}
    )

    assert errors == [
        "definition has unknown keys ['meta']; allowed: ['edges', 'nodes'].",
        "node 'a': unknown keys ['label']; allowed: ['id', 'params', 'retries', "
        "'retry_backoff_seconds', 'timeout_seconds', 'type', 'weight'].",
    ]


def test_all_mistakes_are_collected_in_order():
    errors = errors_of(
        {
            "nodes": [
                node("a", "delay", seconds=-1),
                "oops",
                node("b", "nope"),
                node("c", "log", message="m"),
                node("c", "log", message="m"),
            ],
            "edges": [edge("c", "ghost")],
        }
    )

    assert [e.split(":")[0].split(" must")[0] for e in errors] == [
        "node 'a' (delay)",
        "nodes[1]",
        "node 'b'",
        "node 'c'",
        "edges[0]",
    ]


def test_invalid_definition_message_joins_errors():
    with pytest.raises(InvalidDefinition) as caught:
        parse_definition({"nodes": []})

    assert isinstance(caught.value, ExecutionsError)
    assert str(caught.value) == "definition.nodes must be a non-empty list of nodes."


# --- cycles ---------------------------------------------------------------------


def _cycle(errors: list[str]) -> list[str]:
    (error,) = errors
    prefix, suffix = "edges form a cycle: ", "; a workflow must be acyclic."
    assert error.startswith(prefix)
    assert error.endswith(suffix)
    return error.removeprefix(prefix).removesuffix(suffix).split(" -> ")


def _nodes(*ids: str) -> list[dict]:
    return [node(node_id, "delay", seconds=0) for node_id in ids]


def _assert_is_cycle(path: list[str], edges: list[dict]):
    assert path[0] == path[-1]
    assert len(set(path[:-1])) == len(path) - 1, "a cycle visits each node once"
    pairs = {(e["source"], e["target"]) for e in edges}
    for source, target in itertools.pairwise(path):
        assert (source, target) in pairs, f"{source} -> {target} is not an edge"


def test_self_loop():
    assert _cycle(errors_of({"nodes": _nodes("a"), "edges": [edge("a", "a")]})) == ["a", "a"]


def test_three_node_cycle_path_follows_the_edges():
    edges = [edge("a", "b"), edge("b", "c"), edge("c", "a")]

    path = _cycle(errors_of({"nodes": _nodes("a", "b", "c"), "edges": edges}))

    _assert_is_cycle(path, edges)
    assert set(path) == {"a", "b", "c"}


def test_cycle_reported_without_its_entry_and_exit_nodes():
    # 'tail' is downstream of the cycle and listed first; 'root' feeds it.
    edges = [edge("root", "x"), edge("x", "y"), edge("y", "z"), edge("z", "x"), edge("z", "tail")]

    path = _cycle(errors_of({"nodes": _nodes("tail", "root", "x", "y", "z"), "edges": edges}))

    _assert_is_cycle(path, edges)
    assert set(path) == {"x", "y", "z"}


def test_one_of_two_cycles_is_reported():
    edges = [edge("a", "b"), edge("b", "a"), edge("c", "d"), edge("d", "c")]

    path = _cycle(errors_of({"nodes": _nodes("a", "b", "c", "d"), "edges": edges}))

    _assert_is_cycle(path, edges)


def test_cycle_is_checked_only_once_the_rest_is_valid():
    edges = [edge("a", "b"), edge("b", "a"), edge("a", "ghost")]

    errors = errors_of({"nodes": _nodes("a", "b"), "edges": edges})

    assert errors == ["edges[2]: 'ghost' is not a node of this workflow."]


def test_long_chain_is_not_a_cycle():
    ids = [f"n{i}" for i in range(MAX_NODES)]

    graph = parse_definition(chain(*_nodes(*ids)))

    assert graph.roots == ["n0"]
    assert graph.sinks == [ids[-1]]


# --- registry -------------------------------------------------------------------


class UpperParams(serializers.Serializer):
    field = serializers.CharField()


class Upper(NodeType):
    type_name: ClassVar[str] = "upper"
    params_serializer = UpperParams

    async def run(self, ctx, params, data):
        return {**data, params["field"]: str(data[params["field"]]).upper()}


def test_built_in_node_types(built_in_registry):
    names = ["condition", "delay", "fail", "http_request", "log", "transform"]
    assert node_type_names() == names
    # Each built-in node type lives in its own module, named after it.
    assert [type(get_node_type(name)).__module__ for name in names] == [
        f"executions.engine.nodes.{name}" for name in names
    ]


def test_types_of_other_apps_sit_beside_the_built_ins():
    # What ``built_in_registry`` leaves out: the types ``tests.executions.nodes`` registered.
    names = node_type_names()

    assert {"test_flaky", "test_chatty", "test_shout"} <= set(names)
    assert {"condition", "delay", "fail", "http_request", "log", "transform"} <= set(names)


@pytest.fixture
def upper_registered():
    """``Upper`` registered for one test: ``register`` as a decorator does, then removed."""
    assert register(Upper) is Upper
    yield
    unregister(Upper)


def test_registered_node_type_is_usable_in_definitions(upper_registered):
    graph = parse_definition(chain(node("u", "upper", field="name")))

    assert isinstance(graph.nodes["u"].node_type, Upper)
    assert "upper" in node_type_names()
    assert errors_of(chain(node("u", "upper"))) == [
        "node 'u' (upper): params.field: This field is required."
    ]


def test_registering_the_same_class_twice_is_harmless(upper_registered):
    register(Upper)

    assert node_type_names().count("upper") == 1


def test_a_type_unregistered_is_gone_and_unregistering_it_again_is_harmless(upper_registered):
    unregister(Upper)
    unregister(Upper)

    assert get_node_type("upper") is None
    assert errors_of(chain(node("u", "upper")))[0].startswith("node 'u': unknown type 'upper'")


def test_unregistering_leaves_another_class_of_the_same_name_in_place():
    class FakeDelay(Upper):
        type_name = "delay"

    unregister(FakeDelay)

    assert type(get_node_type("delay")).__name__ == "Delay"


def test_a_type_registered_for_a_block_is_gone_after_it():
    with registered(Upper) as node_class:
        assert node_class is Upper
        assert isinstance(get_node_type("upper"), Upper)

    assert get_node_type("upper") is None


def test_a_block_leaves_a_type_registered_before_it_in_place(upper_registered):
    with registered(Upper):
        pass

    assert isinstance(get_node_type("upper"), Upper)


def test_registering_a_taken_name_is_refused():
    class FakeDelay(Upper):
        type_name = "delay"

    with pytest.raises(ValueError, match="'delay' is already registered"):
        register(FakeDelay)
    assert type(get_node_type("delay")).__name__ == "Delay"


def test_no_test_leaks_a_type_it_registered():
    assert get_node_type("upper") is None
