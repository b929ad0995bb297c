"""Runs one execution's DAG: independent branches at once, each node in order of readiness."""

import asyncio
import json
import logging
from typing import Any

from django.conf import settings

from executions import services
from executions.engine.context import NodeContext
from executions.engine.db import db
from executions.engine.graph import Graph, InvalidDefinition, parse_definition
from executions.exceptions import NodeFailed

logger = logging.getLogger(__name__)


class _NodeError(Exception):
    def __init__(self, node_id: str, message: str):
        super().__init__(f"Node '{node_id}' failed: {message}")


async def run_execution(execution_id: Any) -> None:
    """Claim a pending execution and run it to a terminal status."""
    execution = await db(services.execution_start, execution_id=execution_id)
    if execution is None:
        return
    try:
        graph = parse_definition(execution.workflow.definition)
        result = await _run_graph(execution.id, graph, execution.input_data)
    except InvalidDefinition as exc:
        await db(
            services.execution_fail, execution_id=execution_id, error=f"Invalid workflow: {exc}"
        )
    except _NodeError as exc:
        await db(services.execution_fail, execution_id=execution_id, error=str(exc))
    except Exception as exc:
        logger.exception("Execution %s crashed", execution_id)
        error = f"Internal error while running the workflow: {type(exc).__name__}: {exc}"
        await db(services.execution_fail, execution_id=execution_id, error=error)
    else:
        await db(services.execution_complete, execution_id=execution_id, result=result)


async def _run_graph(execution_id: Any, graph: Graph, input_data: Any) -> Any:
    limit = max(1, settings.EXECUTIONS_MAX_PARALLEL_NODES)
    total = len(graph.nodes)
    outputs: dict[str, Any] = {}
    ready = list(graph.roots)
    running: dict[asyncio.Task, str] = {}
    started = 0
    try:
        while ready or running:
            while ready and len(running) < limit:
                node_id = ready.pop(0)
                started += 1
                message = f"Running node '{node_id}' ({started}/{total})"
                await db(services.execution_progress, execution_id=execution_id, message=message)
                node_input = _node_input(graph, node_id, input_data, outputs)
                task = asyncio.create_task(_run_node(execution_id, graph, node_id, node_input))
                running[task] = node_id
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                node_id = running.pop(task)
                outputs[node_id] = task.result()
                ready.extend(
                    child
                    for child in graph.children[node_id]
                    if all(parent in outputs for parent in graph.parents[child])
                )
                await db(
                    services.execution_progress,
                    execution_id=execution_id,
                    message=f"Finished node '{node_id}' ({len(outputs)}/{total})",
                    progress=len(outputs) * 100 // total,
                )
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    sinks = graph.sinks
    return outputs[sinks[0]] if len(sinks) == 1 else {sink: outputs[sink] for sink in sinks}


def _node_input(graph: Graph, node_id: str, input_data: Any, outputs: dict[str, Any]) -> Any:
    parents = graph.parents[node_id]
    if not parents:
        return input_data
    if len(parents) == 1:
        return outputs[parents[0]]
    return {parent: outputs[parent] for parent in parents}


async def _run_node(execution_id: Any, graph: Graph, node_id: str, data: Any) -> Any:
    node = graph.nodes[node_id]

    async def log(source: str | None, level: str, message: str) -> None:
        await db(
            services.execution_log,
            execution_id=execution_id,
            node_id=source,
            level=level,
            message=message,
        )

    ctx = NodeContext(execution_id=execution_id, node_id=node_id, _log=log)
    try:
        output = await node.node_type.run(ctx, node.params, data)
    except NodeFailed as exc:
        raise _NodeError(node_id, str(exc)) from exc
    except Exception as exc:
        logger.exception("Node %s of execution %s crashed", node_id, execution_id)
        raise _NodeError(node_id, f"{type(exc).__name__}: {exc}") from exc
    try:
        json.dumps(output)
    except (TypeError, ValueError) as exc:
        raise _NodeError(node_id, f"output is not JSON: {exc}") from exc
    return output
