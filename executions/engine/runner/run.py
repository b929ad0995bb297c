"""Runs one execution's DAG on an asyncio loop.

Independent branches run at the same time (at most
``EXECUTIONS_MAX_PARALLEL_NODES`` nodes of one execution at once). Each node
runs with its timeout and retries (``attempts``). A cancellation request stops
the run cooperatively: running nodes are cancelled at their next ``await`` (a
``delay`` at once).
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from django.conf import settings

from executions import log_context, metrics, services
from executions.engine.db import db
from executions.engine.graph import Graph, InvalidDefinition, parse_definition
from executions.engine.outputs import OutputBudget
from executions.engine.recorder import Outcome, Record, RecordFailed, RunRecords
from executions.engine.runner.attempts import NodeAttempts
from executions.engine.runner.local_runs import StopReason, run_added, run_removed
from executions.engine.runner.progress import ProgressReporter
from executions.engine.streams import NodeStreams
from executions.exceptions import ClaimLost, InvalidTransition
from executions.heartbeat import heartbeat, runner_name
from executions.models import EventType, Execution, ExecutionStatus, NodeStatus
from executions.services.eventlog import log_data

logger = logging.getLogger(__name__)


async def run_execution(execution_id: Any) -> None:
    """Claim a pending execution and run it to a terminal status."""
    execution = await db(
        services.execution_start,
        execution_id=execution_id,
        runner=runner_name(),
        worker_id=heartbeat.worker_id,
    )
    if execution is None:
        return
    metrics.execution_claimed()
    with log_context.bound(execution_id=execution.id, request_id=execution.request_id or None):
        logger.info("Execution %s started", execution.id)
        await _run(execution)
        logger.info("Execution %s ended its run here", execution.id)


async def _run(execution: Execution) -> None:
    token = execution.claim_token
    try:
        graph = parse_definition(execution.definition)
    except InvalidDefinition as exc:
        error = f"Invalid workflow: {exc}"
        await _finish(execution.id, ExecutionStatus.FAILED, error=error, claim_token=token)
        return
    run = Run(execution, graph)
    run_added(run)
    try:
        await run.execute()
    except ClaimLost:
        logger.warning("Execution %s was taken over elsewhere; this run stops", execution.id)
    except Exception as exc:
        logger.exception("Execution %s crashed", execution.id)
        error = f"Internal error while running the workflow: {type(exc).__name__}: {exc}"
        await _finish(execution.id, ExecutionStatus.FAILED, error=error, claim_token=token)
    finally:
        run_removed(execution.id)


async def _finish(execution_id: Any, status: str, **fields: Any) -> None:
    try:
        await db(services.execution_finish, execution_id=execution_id, status=status, **fields)
        metrics.execution_finished(status)
    except (InvalidTransition, ClaimLost) as exc:
        logger.info("Execution %s not finished here: %s", execution_id, exc)


class Run(NodeAttempts):
    """The in-memory state of one execution while it runs."""

    def __init__(self, execution: Execution, graph: Graph):
        self.id = execution.id
        self.graph = graph
        self.input_data = execution.input_data
        self.status = dict.fromkeys(graph.nodes, NodeStatus.PENDING)
        self.fraction = dict.fromkeys(graph.nodes, 0.0)
        # Of every node that completed, as soon as it did.
        self.outputs: dict[str, Any] = {}
        self.budget = OutputBudget(graph)  # their sizes, against the output limits
        self.log_cut = execution.log_cut
        self.stream_cut = execution.stream_cut
        # Its log lines and chunks not yet committed (``executions.engine.recorder``).
        self.records = RunRecords(self.record_outcome)
        # The streams of each node's current attempt.
        self.streams: dict[str, NodeStreams] = {}
        # The nodes whose completion was handled: their children may be ready.
        self.handled: set[str] = set()
        self.started = 0
        self.claim_token = execution.claim_token
        self.ended = False  # the last node's completion ended the execution
        self.stop_requested = asyncio.Event()
        self.stop_reason = StopReason.NONE
        self.loop = asyncio.get_running_loop()
        self.progress = ProgressReporter(self)
        # A rerun counts from zero again; what an earlier run reported stands
        # until this one passes it (the services keep the highest value).
        self.progress.recorded(execution.progress)

    def request_stop(self, reason: StopReason) -> None:
        """Ask the run to stop (the strongest reason asked for wins); any thread."""

        def stop() -> None:
            self.stop_reason = max(self.stop_reason, reason)
            self.stop_requested.set()

        self.loop.call_soon_threadsafe(stop)

    async def write(self, service, **kwargs: Any) -> Any:
        """Call a service for this execution, as the holder of its claim, once its
        log lines and chunks so far are recorded."""
        began = time.perf_counter()
        await self.records.drain()
        done = await db(service, execution_id=self.id, claim_token=self.claim_token, **kwargs)
        metrics.event_committed(metrics.STATE, time.perf_counter() - began)
        return done

    def record(self, event_type: str, data: dict) -> None:
        """Queue a log line or a chunk, recorded in the loop's next batch."""
        self.records.queue(Record(self.id, self.claim_token, event_type, data))

    def record_outcome(self, record: Record, outcome: str) -> None:
        if outcome == Outcome.CLAIM_LOST:
            self.request_stop(StopReason.ABANDON)
        elif outcome == Outcome.DROPPED and record.type == EventType.LOG:
            self.log_cut = True
        elif outcome == Outcome.DROPPED:
            self.stream_cut = True

    async def log(self, node_id: str | None, level: str, message: str) -> None:
        """Queue a log line (recorded in the loop's next batch), unless the log is cut."""
        if self.log_cut:
            return  # past the log's limits: nothing more is recorded
        self.record(EventType.LOG, log_data(node_id, level, message))
        await self.records.room()

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
        await self.write(services.execution_nodes_prepare, nodes=nodes)
        limit = max(1, settings.EXECUTIONS_MAX_PARALLEL_NODES)
        ready = deque(self.graph.roots)
        running: dict[asyncio.Task, str] = {}
        stopped = asyncio.ensure_future(self.stop_requested.wait())
        try:
            while ready or running:
                while ready and len(running) < limit:
                    node_id = ready.popleft()
                    running[asyncio.create_task(self.run_node(node_id))] = node_id
                done, _ = await asyncio.wait(
                    [*running, stopped], return_when=asyncio.FIRST_COMPLETED
                )
                if stopped in done:
                    return await self.stop_early(running)
                for task in done:
                    node_id = running.pop(task)
                    if task.exception() is not None:
                        error = str(task.exception())
                        return await self.stop(running, ExecutionStatus.FAILED, error=error)
                    ready.extend(await self.completed(node_id, task.result()))
        finally:
            stopped.cancel()
            # Also when cancelled from outside (the process stops its runs):
            # no node task, nor progress write, outlives the run.
            await self.halt(running)
        if self.ended:
            return
        await self.progress.close()
        await _finish(
            self.id, ExecutionStatus.COMPLETED, result=self.result(), claim_token=self.claim_token
        )

    async def completed(self, node_id: str, outcome: tuple[Any, bool]) -> list[str]:
        """Handle a node's completion (skipping downstream if asked); return the
        children that became ready."""
        _, skip_downstream = outcome
        self.handled.add(node_id)
        if skip_downstream:
            skipped = [
                n for n in self.graph.descendants(node_id) if self.status[n] == NodeStatus.PENDING
            ]
            for other in skipped:
                self.status[other] = NodeStatus.SKIPPED
            if skipped:
                await self.write(services.execution_nodes_skip, node_ids=skipped)
                self.progress.changed()
        return [
            child
            for child in self.graph.children[node_id]
            if self.status[child] == NodeStatus.PENDING
            and all(parent in self.handled for parent in self.graph.parents[child])
        ]

    async def stop(self, running: dict[asyncio.Task, str], status: str, **fields: Any) -> None:
        """Cancel the running nodes and end the execution with ``status``."""
        await self.halt(running)
        await _finish(self.id, status, claim_token=self.claim_token, **fields)

    async def halt(self, running: dict[asyncio.Task, str]) -> None:
        """Cancel the running nodes, wait until each has stopped, stop recording progress."""
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.progress.close()
        with contextlib.suppress(RecordFailed):
            await self.records.drain()

    async def stop_early(self, running: dict[asyncio.Task, str]) -> None:
        """Stop for the reason requested: cancelled, handed back, or abandoned."""
        if self.stop_reason == StopReason.CANCEL:
            return await self.stop(running, ExecutionStatus.CANCELLED, log="Cancelled")
        await self.halt(running)
        if self.stop_reason == StopReason.RELEASE:
            with contextlib.suppress(ClaimLost):
                await self.write(
                    services.execution_interrupt, reason=f"Runner {runner_name()} shut down"
                )

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
