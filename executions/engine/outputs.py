"""What a run may store: each node's output and all of them together.

Every output is measured once, as bytes of JSON (as ``json.dumps`` writes
it), when its node produces it, and the measuring stops as soon as it passes
what is left to spend: an output that would be too big is never serialized
whole. An input the engine assembles from several parents is sized from
their measured outputs before it is built.
"""

import json
from collections.abc import Iterable

from django.conf import settings

from executions.engine.graph import Graph

NULL_BYTES = len("null")


def json_size(value: object, *, stop_after: int) -> int:
    """Bytes of ``value`` as JSON; once past ``stop_after``, some number above it.

    Raises ``TypeError`` or ``ValueError`` as ``json.dumps`` would.
    """
    size = 0
    for chunk in json.JSONEncoder().iterencode(value):
        size += len(chunk)
        if size > stop_after:
            break
    return size


def object_size(sizes: dict[str, int], keys: Iterable[str]) -> int:
    """Bytes of ``{key: value, ...}`` as JSON, from each value's size (null when absent)."""
    keys = list(keys)
    members = sum(len(json.dumps(key)) + 2 + sizes.get(key, NULL_BYTES) for key in keys)
    return 2 + members + 2 * max(0, len(keys) - 1)


class OutputBudget:
    """The sizes of a run's outputs and what they add up to, its result included.

    ``total`` counts every stored node output plus the result (a sink's output
    is stored twice: on its node and in the result), against
    ``EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES``.
    """

    def __init__(self, graph: Graph):
        self.sinks = graph.sinks
        self.sizes: dict[str, int] = {}
        self.total = self.result_size()

    def result_size(self) -> int:
        if len(self.sinks) == 1:
            return self.sizes.get(self.sinks[0], NULL_BYTES)
        return object_size(self.sizes, self.sinks)

    def input_error(self, parents: list[str]) -> str | None:
        """Why the input assembled from ``parents`` may not be built, if it may not."""
        limit = settings.EXECUTIONS_MAX_NODE_OUTPUT_BYTES
        if len(parents) < 2 or (size := object_size(self.sizes, parents)) <= limit:
            return None
        return (
            f"its input, the outputs of its {len(parents)} parents, would be {size} bytes "
            f"of JSON, over the limit of {limit} (EXECUTIONS_MAX_NODE_OUTPUT_BYTES); "
            "have the parents return less, or raise the limit"
        )

    def admit(self, node_id: str, output: object) -> str | None:
        """Measure and count ``node_id``'s output; or say which limit it passes,
        counting nothing."""
        node_limit = settings.EXECUTIONS_MAX_NODE_OUTPUT_BYTES
        run_limit = settings.EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES
        copies = 2 if node_id in self.sinks else 1
        freed = NULL_BYTES if node_id in self.sinks else 0
        room = (run_limit - self.total + freed) // copies
        size = json_size(output, stop_after=max(0, min(node_limit, room)))
        if size > node_limit:
            return (
                f"its output is over {node_limit} bytes of JSON, the limit per node "
                "(EXECUTIONS_MAX_NODE_OUTPUT_BYTES); return less, or raise the limit"
            )
        if size > room:
            return (
                f"its output ({size} bytes of JSON or more) would bring the execution's stored "
                f"output past {run_limit} bytes (EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES, "
                "every node's output plus the result); return less, or raise the limit"
            )
        self.sizes[node_id] = size
        self.total += copies * size - freed
        return None
