"""Workflow definitions: validation and the DAG they describe."""

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

from executions.engine.fields import StrictFloatField, StrictIntegerField
from executions.engine.registry import NodeType, get_node_type, node_type_names
from executions.exceptions import ExecutionsError

NODE_KEYS = {
    "id",
    "type",
    "params",
    "timeout_seconds",
    "retries",
    "retry_backoff_seconds",
    "weight",
}
MAX_NODES = 1000


class NodeOptions(serializers.Serializer):
    """The keys of a node beside ``params``: how the engine runs it."""

    timeout_seconds = StrictFloatField(min_value=0.001, max_value=86400, required=False)
    retries = StrictIntegerField(min_value=0, max_value=10, default=0)
    retry_backoff_seconds = StrictFloatField(min_value=0, max_value=3600, default=1.0)
    weight = StrictFloatField(min_value=0.001, max_value=1000, default=1.0)


class InvalidDefinition(ExecutionsError):
    """The definition is not a valid workflow; ``errors`` lists every mistake found."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    params: dict
    node_type: NodeType
    timeout_seconds: float | None = None
    retries: int = 0
    retry_backoff_seconds: float = 1.0
    weight: float = 1.0

    @property
    def max_attempts(self) -> int:
        return self.retries + 1


@dataclass
class Graph:
    """Nodes in definition order with their parent and child lists."""

    nodes: dict[str, Node]
    parents: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)

    @property
    def roots(self) -> list[str]:
        return [node_id for node_id in self.nodes if not self.parents[node_id]]

    @property
    def sinks(self) -> list[str]:
        return [node_id for node_id in self.nodes if not self.children[node_id]]

    def descendants(self, node_id: str) -> list[str]:
        """Every node reachable from ``node_id``, in definition order."""
        seen: set[str] = set()
        stack = list(self.children[node_id])
        while stack:
            child = stack.pop()
            if child not in seen:
                seen.add(child)
                stack.extend(self.children[child])
        return [other for other in self.nodes if other in seen]


def parse_definition(definition: Any) -> Graph:
    """Validate ``definition`` and return its graph, or raise ``InvalidDefinition``."""
    if not isinstance(definition, dict):
        raise InvalidDefinition([_("definition must be a JSON object with 'nodes' and 'edges'.")])
    errors: list[str] = []
    unknown = sorted(set(definition) - {"nodes", "edges"})
    if unknown:
        errors.append(
            _("definition has unknown keys %(keys)s; allowed: ['edges', 'nodes'].")
            % {"keys": unknown}
        )
    nodes = _parse_nodes(definition.get("nodes"), errors)
    graph = Graph(nodes=nodes, parents={n: [] for n in nodes}, children={n: [] for n in nodes})
    _parse_edges(definition.get("edges", []), graph, errors)
    if not errors:
        cycle = _find_cycle(graph)
        if cycle:
            errors.append(
                _("edges form a cycle: %(cycle)s; a workflow must be acyclic.")
                % {"cycle": " -> ".join(cycle)}
            )
    if errors:
        raise InvalidDefinition(errors)
    return graph


def _parse_nodes(raw: Any, errors: list[str]) -> dict[str, Node]:
    if not isinstance(raw, list) or not raw:
        errors.append(_("definition.nodes must be a non-empty list of nodes."))
        return {}
    if len(raw) > MAX_NODES:
        errors.append(
            _("definition.nodes has %(count)d nodes; at most %(max)d are allowed.")
            % {"count": len(raw), "max": MAX_NODES}
        )
        return {}
    nodes: dict[str, Node] = {}
    for index, item in enumerate(raw):
        node = _parse_node(index, item, errors)
        if node is None:
            continue
        if node.id in nodes:
            errors.append(
                _("node '%(id)s': duplicate node id; every node needs its own id.")
                % {"id": node.id}
            )
            continue
        nodes[node.id] = node
    return nodes


def _parse_node(index: int, item: Any, errors: list[str]) -> Node | None:
    if not isinstance(item, dict):
        errors.append(
            _("nodes[%(index)d] must be an object with 'id', 'type' and 'params'.")
            % {"index": index}
        )
        return None
    node_id = item.get("id")
    if not isinstance(node_id, str) or not node_id.strip() or len(node_id) > 100:
        errors.append(
            _("nodes[%(index)d].id must be a non-empty string of at most 100 characters.")
            % {"index": index}
        )
        return None
    unknown = sorted(set(item) - NODE_KEYS)
    if unknown:
        errors.append(
            _("node '%(id)s': unknown keys %(keys)s; allowed: %(allowed)s.")
            % {"id": node_id, "keys": unknown, "allowed": sorted(NODE_KEYS)}
        )
    node_type = get_node_type(item.get("type")) if isinstance(item.get("type"), str) else None
    if node_type is None:
        errors.append(
            _("node '%(id)s': unknown type %(type)s; known types: %(known)s.")
            % {"id": node_id, "type": repr(item.get("type")), "known": ", ".join(node_type_names())}
        )
        return None
    try:
        params = node_type.validate_params(item.get("params", {}))
    except serializers.ValidationError as exc:
        errors.append(
            _("node '%(id)s' (%(type)s): %(problems)s")
            % {"id": node_id, "type": node_type.type_name, "problems": _flatten(exc.detail)}
        )
        return None
    options = NodeOptions(
        data={key: item[key] for key in NODE_KEYS - {"id", "type", "params"} if key in item}
    )
    if not options.is_valid():
        errors.append(
            _("node '%(id)s': %(problems)s")
            % {"id": node_id, "problems": _flatten(options.errors, prefix="")}
        )
        return None
    return Node(
        id=node_id,
        type=node_type.type_name,
        params=params,
        node_type=node_type,
        **options.validated_data,
    )


def _parse_edges(raw: Any, graph: Graph, errors: list[str]) -> None:
    if not isinstance(raw, list):
        errors.append(_("definition.edges must be a list of {'source', 'target'} objects."))
        return
    seen: set[tuple[str, str]] = set()
    for index, edge in enumerate(raw):
        if not isinstance(edge, dict) or set(edge) != {"source", "target"}:
            errors.append(
                _("edges[%(index)d] must be an object with exactly 'source' and 'target'.")
                % {"index": index}
            )
            continue
        source, target = edge["source"], edge["target"]
        missing = [
            end for end in (source, target) if not isinstance(end, str) or end not in graph.nodes
        ]
        if missing:
            names = ", ".join(repr(end) for end in missing)
            errors.append(
                _("edges[%(index)d]: %(names)s is not a node of this workflow.")
                % {"index": index, "names": names}
            )
            continue
        if (source, target) in seen:
            errors.append(
                _("edges[%(index)d]: duplicate edge %(source)s -> %(target)s.")
                % {"index": index, "source": source, "target": target}
            )
            continue
        seen.add((source, target))
        graph.children[source].append(target)
        graph.parents[target].append(source)


def _find_cycle(graph: Graph) -> list[str] | None:
    """Return one cycle as a node path (first node repeated at the end), if any."""
    indegree = {node_id: len(parents) for node_id, parents in graph.parents.items()}
    queue = deque(node_id for node_id, degree in indegree.items() if degree == 0)
    while queue:
        for child in graph.children[queue.popleft()]:
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    remaining = {node_id for node_id, degree in indegree.items() if degree > 0}
    if not remaining:
        return None
    # Every remaining node has a remaining parent: walk parents until a repeat.
    path, node_id = [], next(n for n in graph.nodes if n in remaining)
    while node_id not in path:
        path.append(node_id)
        node_id = next(p for p in graph.parents[node_id] if p in remaining)
    cycle = path[path.index(node_id) :]
    cycle.reverse()
    return [*cycle, cycle[0]]


def _flatten(detail: Any, prefix: str = "params") -> str:
    if isinstance(detail, dict):
        return " ".join(
            _flatten(value, f"{prefix}.{key}" if prefix else key) for key, value in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(_flatten(value, prefix) for value in detail)
    if prefix.endswith(".non_field_errors"):
        prefix = prefix.removesuffix(".non_field_errors")
    return f"{prefix}: {detail}"
