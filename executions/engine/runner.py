"""Runs one execution's DAG on an asyncio loop.

Independent branches run at the same time (at most
``EXECUTIONS_MAX_PARALLEL_NODES`` nodes of one execution at once). Each node
runs with its timeout and retries; every attempt is recorded as ``node``
events. A cancellation request stops the run cooperatively: running nodes
are cancelled at their next ``await`` (a ``delay`` at once).
"""

import asyncio
import json
import logging
from collections import deque
from typing import Any

from django.conf import settings

from executions import services
from executions.engine.context import NodeContext
from executions.engine.db import db
from executions.engine.graph import Graph, InvalidDefinition, parse_definition
from executions.exceptions import InvalidTransition, NodeFailed
from executions.models import Execution, ExecutionStatus, NodeStatus
from executions.selectors import executions_cancel_requested

logger = logging.getLogger(__name__)

# Runs of this process by execution id; touched only on the runner's loop.
_active: dict[Any, "Run"] = {}
_poller: asyncio.Task | None = None


class NodeError(Exception):
    """A node's last attempt failed; the execution fails with this message."""

    def __init__(self, node_id: str, message: str):
        super().__init__(f"Node '{node_id}' failed: {message}")


async def run_execution(execution_id: Any) -> None:
    """Claim a pending execution and run it to a terminal status."""
    execution = await db(services.execution_start, execution_id=execution_id)
    if execution is None:
        return
    try:
        graph = parse_definition(execution.workflow.definition)
    except InvalidDefinition as exc:
        await _finish(execution.id, ExecutionStatus.FAILED, error=f"Invalid workflow: {exc}")
        return
    run = Run(execution, graph)
    _register(run)
    try:
        await run.execute()
    except Exception as exc:
        logger.exception("Execution %s crashed", execution.id)
        error = f"Internal error while running the workflow: {type(exc).__name__}: {exc}"
        await _finish(execution.id, ExecutionStatus.FAILED, error=error)
    finally:
        _active.pop(execution.id, None)


def cancel_local_run(execution_id: Any) -> None:
    """Stop a run of this process, if it has one; safe to call from any thread."""
    run = _active.get(execution_id)
    if run is not None:
        run.loop.call_soon_threadsafe(run.cancel_requested.set)


async def _finish(execution_id: Any, status: str, **fields: Any) -> None:
    try:
        await db(services.execution_finish, execution_id=execution_id, status=status, **fields)
    except InvalidTransition:
        logger.info("Execution %s had already ended", execution_id)


class Run:
    """The in-memory state of one execution while it runs."""

    def __init__(self, execution: Execution, graph: Graph):
        self.id = execution.id
        self.graph = graph
        self.input_data = execution.input_data
        self.status = dict.fromkeys(graph.nodes, NodeStatus.PENDING)
        self.fraction = dict.fromkeys(graph.nodes, 0.0)
        self.outputs: dict[str, Any] = {}
        self.started = 0
        self.cancel_requested = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.progress = ProgressReporter(self)

    def percent(self) -> int:
        """Weighted completion of all nodes; skipped nodes count as done."""
        weights = {node_id: node.weight for node_id, node in self.graph.nodes.items()}
        done = sum(
            weight
            * (
                1.0
                if self.status[node_id] in (NodeStatus.COMPLETED, NodeStatus.SKIPPED)
                else self.fraction[node_id]
            )
            for node_id, weight in weights.items()
        )
        return int(done * 100 / sum(weights.values()))

    async def execute(self) -> None:
        nodes = [(n.id, n.type, n.max_attempts) for n in self.graph.nodes.values()]
        await db(services.execution_nodes_prepare, execution_id=self.id, nodes=nodes)
        limit = max(1, settings.EXECUTIONS_MAX_PARALLEL_NODES)
        ready = deque(self.graph.roots)
        running: dict[asyncio.Task, str] = {}
        cancelled = asyncio.ensure_future(self.cancel_requested.wait())
        try:
            while ready or running:
                while ready and len(running) < limit:
                    node_id = ready.popleft()
                    running[asyncio.create_task(self.run_node(node_id))] = node_id
                done, _ = await asyncio.wait(
                    [*running, cancelled], return_when=asyncio.FIRST_COMPLETED
                )
                if cancelled in done:
                    return await self.stop(running, ExecutionStatus.CANCELLED, log="Cancelled")
                for task in done:
                    node_id = running.pop(task)
                    if task.exception() is not None:
                        error = str(task.exception())
                        return await self.stop(running, ExecutionStatus.FAILED, error=error)
                    ready.extend(await self.completed(node_id, task.result()))
        finally:
            cancelled.cancel()
        await self.progress.close()
        await _finish(self.id, ExecutionStatus.COMPLETED, result=self.result())

    async def completed(self, node_id: str, outcome: tuple[Any, bool]) -> list[str]:
        """Record a node's output; return the children that became ready."""
        output, skip_downstream = outcome
        self.outputs[node_id] = output
        if skip_downstream:
            skipped = [
                n for n in self.graph.descendants(node_id) if self.status[n] == NodeStatus.PENDING
            ]
            for other in skipped:
                self.status[other] = NodeStatus.SKIPPED
            if skipped:
                await db(services.execution_nodes_skip, execution_id=self.id, node_ids=skipped)
                self.progress.changed()
        return [
            child
            for child in self.graph.children[node_id]
            if self.status[child] == NodeStatus.PENDING
            and all(parent in self.outputs for parent in self.graph.parents[child])
        ]

    async def stop(self, running: dict[asyncio.Task, str], status: str, **fields: Any) -> None:
        """Cancel the running nodes and end the execution with ``status``."""
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.progress.close()
        await _finish(self.id, status, **fields)

    def result(self) -> Any:
        sinks = self.graph.sinks
        if len(sinks) == 1:
            return self.outputs.get(sinks[0])
        return {sink: self.outputs.get(sink) for sink in sinks}

    def node_input(self, node_id: str) -> Any:
        parents = self.graph.parents[node_id]
        if not parents:
            return self.input_data
        if len(parents) == 1:
            return self.outputs[parents[0]]
        return {parent: self.outputs[parent] for parent in parents}

    async def run_node(self, node_id: str) -> tuple[Any, bool]:
        """Run a node's attempts; return its output and whether to skip downstream."""
        node = self.graph.nodes[node_id]
        self.started += 1
        message = f"Running node '{node_id}' ({self.started}/{len(self.graph.nodes)})"
        for attempt in range(1, node.max_attempts + 1):
            self.status[node_id] = NodeStatus.RUNNING
            await db(
                services.execution_node_update,
                execution_id=self.id,
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
            await db(
                services.execution_node_update,
                execution_id=self.id,
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
        try:
            output = await asyncio.wait_for(
                node.node_type.run(ctx, node.params, self.node_input(node_id)),
                node.timeout_seconds,
            )
            json.dumps(output)
        except TimeoutError:
            error = f"timed out after {node.timeout_seconds:g} s"
            await self.log(None, "warning", f"Node '{node_id}' {error}")
            return None, error
        except NodeFailed as exc:
            return None, str(exc)
        except Exception as exc:
            logger.exception("Node %s of execution %s crashed", node_id, self.id)
            return None, f"{type(exc).__name__}: {exc}"
        self.status[node_id] = NodeStatus.COMPLETED
        self.fraction[node_id] = 1.0
        done = sum(s in (NodeStatus.COMPLETED, NodeStatus.SKIPPED) for s in self.status.values())
        percent = self.percent()
        self.progress.recorded(percent)
        await db(
            services.execution_node_update,
            execution_id=self.id,
            node_id=node_id,
            status=NodeStatus.COMPLETED,
            output=output,
            message=f"Finished node '{node_id}' ({done}/{len(self.graph.nodes)} done)",
            progress=percent,
        )
        return output, None

    def context(self, node_id: str, attempt: int) -> NodeContext:
        def progress(fraction: float) -> None:
            if fraction > self.fraction[node_id] and self.status[node_id] == NodeStatus.RUNNING:
                self.fraction[node_id] = fraction
                self.progress.changed()

        async def log(level: str, message: str) -> None:
            await self.log(node_id, level, message)

        return NodeContext(
            execution_id=self.id, node_id=node_id, attempt=attempt, _log=log, _progress=progress
        )

    async def log(self, node_id: str | None, level: str, message: str) -> None:
        await db(
            services.execution_log,
            execution_id=self.id,
            node_id=node_id,
            level=level,
            message=message,
        )


class ProgressReporter:
    """Records progress-only changes at most ``EXECUTIONS_PROGRESS_EVENTS_PER_SECOND``
    times a second per execution; the latest value is always recorded."""

    def __init__(self, run: Run):
        self.run = run
        self.sent = 0
        self.last_time = float("-inf")
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task | None = None
        self.closed = False

    def recorded(self, percent: int) -> None:
        """Another event carried ``percent``; it need not be sent again."""
        self.sent = max(self.sent, percent)

    def changed(self) -> None:
        if self.closed or self.timer is not None or self.task is not None:
            return  # the pending write will read the latest value
        loop = asyncio.get_running_loop()
        wait = self.last_time + 1 / settings.EXECUTIONS_PROGRESS_EVENTS_PER_SECOND - loop.time()
        if wait <= 0:
            self.flush()
        else:
            self.timer = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        self.timer = None
        if not self.closed and self.run.percent() > self.sent:
            self.task = asyncio.get_running_loop().create_task(self.write())

    async def write(self) -> None:
        percent = self.run.percent()
        self.last_time = asyncio.get_running_loop().time()
        try:
            await db(services.execution_progress, execution_id=self.run.id, progress=percent)
            self.sent = max(self.sent, percent)
        finally:
            self.task = None
        if self.run.percent() > self.sent:
            self.changed()

    async def close(self) -> None:
        """Stop recording; called before the terminal event."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


def _register(run: Run) -> None:
    global _poller
    _active[run.id] = run
    if _poller is None or _poller.done():
        _poller = asyncio.get_running_loop().create_task(_poll_cancellations())


async def _poll_cancellations() -> None:
    """Notice cancellations requested through other processes, in one query for all runs."""
    while _active:
        await asyncio.sleep(settings.EXECUTIONS_CANCEL_POLL_INTERVAL)
        try:
            requested = await db(executions_cancel_requested, execution_ids=list(_active))
        except Exception:
            logger.exception("Could not check for cancellations; retrying")
            continue
        for execution_id in requested:
            cancel_local_run(execution_id)
