"""A node's attempts within a run: each with its timeout, retried with backoff.

Every attempt is recorded as ``node`` events; the completion of the last node
ends the execution in the same transaction.
"""

import asyncio
import logging
from typing import Any

from executions import log_context, metrics, services
from executions.engine.context import NodeContext
from executions.engine.graph import Graph
from executions.engine.outputs import OutputBudget
from executions.engine.recorder import RunRecords
from executions.engine.runner.progress import ProgressReporter
from executions.engine.streams import NodeStreams
from executions.exceptions import NodeFailed
from executions.models import EventType, ExecutionStatus, NodeStatus

logger = logging.getLogger(__name__)


class NodeError(Exception):
    """A node's last attempt failed; the execution fails with this message."""

    def __init__(self, node_id: str, message: str):
        super().__init__(f"Node '{node_id}' failed: {message}")


class NodeAttempts:
    """Runs the nodes of a ``Run``: the part of it that calls the node types.

    Mixed into ``Run``, whose state it shares: these are the parts it uses.
    """

    id: Any
    graph: Graph
    status: dict[str, str]
    fraction: dict[str, float]
    outputs: dict[str, Any]
    budget: OutputBudget
    records: RunRecords
    streams: dict[str, NodeStreams]
    progress: ProgressReporter
    started: int
    ended: bool
    stream_cut: bool

    async def run_node(self, node_id: str) -> tuple[Any, bool]:
        """Run a node's attempts; return its output and whether to skip downstream."""
        with log_context.bound(node_id=node_id):
            return await self.run_node_attempts(node_id)

    async def run_node_attempts(self, node_id: str) -> tuple[Any, bool]:
        node = self.graph.nodes[node_id]
        self.started += 1
        message = f"Running node '{node_id}' ({self.started}/{len(self.graph.nodes)})"
        for attempt in range(1, node.max_attempts + 1):
            self.status[node_id] = NodeStatus.RUNNING
            await self.write(
                services.execution_node_update,
                node_id=node_id,
                status=NodeStatus.RUNNING,
                attempt=attempt,
                message=message if attempt == 1 else None,
            )
            ctx = self.context(node_id, attempt)
            output, error = await self.attempt(node_id, ctx)
            if error is None:
                return output, ctx.skip_downstream_requested
            self.status[node_id] = NodeStatus.FAILED
            await self.write(
                services.execution_node_update,
                node_id=node_id,
                status=NodeStatus.FAILED,
                error=error,
            )
            if attempt < node.max_attempts:
                wait = node.retry_backoff_seconds * 2 ** (attempt - 1)
                await self.log(
                    None,
                    "warning",
                    f"Node '{node_id}' attempt {attempt} of {node.max_attempts} failed: "
                    f"{error}; retrying in {wait:g} s",
                )
                await asyncio.sleep(wait)
        raise NodeError(node_id, error)

    async def attempt(self, node_id: str, ctx: NodeContext) -> tuple[Any, str | None]:
        """Run one attempt; record success and return ``(output, None)``, or ``(None, error)``."""
        node = self.graph.nodes[node_id]
        # Checked before the input is built, from the parents' measured outputs.
        error = self.budget.input_error(self.graph.parents[node_id])
        if error is not None:
            return None, error
        try:
            try:
                output = await asyncio.wait_for(
                    node.node_type.run(ctx, node.params, self.node_input(node_id)),
                    node.timeout_seconds,
                )
            finally:
                self.streams[node_id].close()
            error = self.budget.admit(node_id, output)
        except TimeoutError:
            error = f"timed out after {node.timeout_seconds:g} s"
            await self.log(None, "warning", f"Node '{node_id}' {error}")
            return None, error
        except NodeFailed as exc:
            return None, str(exc)
        except Exception as exc:
            logger.exception("Node %s of execution %s crashed", node_id, self.id)
            return None, f"{type(exc).__name__}: {exc}"
        if error is not None:
            return None, error
        await self.completed_attempt(node_id, output)
        return output, None

    async def completed_attempt(self, node_id: str, output: Any) -> None:
        """Record a node's output; the last node's completion ends the execution."""
        self.status[node_id] = NodeStatus.COMPLETED
        self.fraction[node_id] = 1.0
        self.outputs[node_id] = output
        done = sum(s in (NodeStatus.COMPLETED, NodeStatus.SKIPPED) for s in self.status.values())
        if done == len(self.status):
            # The last node: nothing else runs or waits, so this ends the run.
            await self.progress.close()
            await self.write(
                services.execution_complete_with_node,
                node_id=node_id,
                output=output,
                result=self.result(),
            )
            self.ended = True
            metrics.execution_finished(ExecutionStatus.COMPLETED)
            return
        percent = self.percent()
        self.progress.recorded(percent)
        await self.write(
            services.execution_node_update,
            node_id=node_id,
            status=NodeStatus.COMPLETED,
            output=output,
            message=f"Finished node '{node_id}' ({done}/{len(self.graph.nodes)} done)",
            progress=percent,
        )

    def context(self, node_id: str, attempt: int) -> NodeContext:
        def progress(fraction: float) -> None:
            if fraction > self.fraction[node_id] and self.status[node_id] == NodeStatus.RUNNING:
                self.fraction[node_id] = fraction
                self.progress.changed()

        async def log(level: str, message: str) -> None:
            await self.log(node_id, level, message)

        def chunk(data: dict) -> None:
            if not self.stream_cut:
                self.record(EventType.CHUNK, data)

        streams = NodeStreams(node_id=node_id, attempt=attempt, emit=chunk)

        async def stream(name: str, piece: Any, is_json: bool) -> None:
            streams.add(name, piece, is_json=is_json)
            await self.records.room()

        self.streams[node_id] = streams
        return NodeContext(
            execution_id=self.id,
            node_id=node_id,
            attempt=attempt,
            _log=log,
            _progress=progress,
            _stream=stream,
        )
