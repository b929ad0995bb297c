"""Runs one execution's DAG on an asyncio loop.

Independent branches run at the same time (at most
``EXECUTIONS_MAX_PARALLEL_NODES`` nodes of one execution at once). Each node
runs with its timeout and retries; every attempt is recorded as ``node``
events. A cancellation request stops the run cooperatively: running nodes
are cancelled at their next ``await`` (a ``delay`` at once).
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from django.conf import settings

from executions import log_context, metrics, services
from executions.dispatch import runner_name
from executions.engine.context import NodeContext
from executions.engine.db import db
from executions.engine.graph import Graph, InvalidDefinition, parse_definition
from executions.engine.outputs import OutputBudget
from executions.engine.recorder import Outcome, Record, RecordFailed, RunRecords
from executions.engine.streams import NodeStreams
from executions.exceptions import ClaimLost, InvalidTransition, NodeFailed
from executions.heartbeat import heartbeat
from executions.models import EventType, Execution, ExecutionStatus, NodeStatus
from executions.selectors import executions_cancel_requested
from executions.services.eventlog import log_data

logger = logging.getLogger(__name__)

# Runs of this process by execution id; touched only on the runner's loop.
_active: dict[Any, "Run"] = {}
_watcher: asyncio.Task | None = None


class NodeError(Exception):
    """A node's last attempt failed; the execution fails with this message."""

    def __init__(self, node_id: str, message: str):
        super().__init__(f"Node '{node_id}' failed: {message}")


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
    _register(run)
    try:
        await run.execute()
    except ClaimLost:
        logger.warning("Execution %s was taken over elsewhere; this run stops", execution.id)
    except Exception as exc:
        logger.exception("Execution %s crashed", execution.id)
        error = f"Internal error while running the workflow: {type(exc).__name__}: {exc}"
        await _finish(execution.id, ExecutionStatus.FAILED, error=error, claim_token=token)
    finally:
        _active.pop(execution.id, None)


def cancel_local_run(execution_id: Any) -> None:
    """Stop a run of this process, if it has one; safe to call from any thread."""
    run = _active.get(execution_id)
    if run is not None:
        run.request_stop(CANCEL)


def release_local_runs() -> int:
    """Hand every run of this process back (this runner is shutting down); any thread."""
    runs = list(_active.values())
    for run in runs:
        run.request_stop(RELEASE)
    return len(runs)


def active_runs() -> int:
    return len(_active)


metrics.runs_counted_by(active_runs)


async def _finish(execution_id: Any, status: str, **fields: Any) -> None:
    try:
        await db(services.execution_finish, execution_id=execution_id, status=status, **fields)
        metrics.execution_finished(status)
    except (InvalidTransition, ClaimLost) as exc:
        logger.info("Execution %s not finished here: %s", execution_id, exc)


# Why a run stops early, strongest last: a run being abandoned writes nothing.
CANCEL, RELEASE, ABANDON = 1, 2, 3


class Run:
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
        self.stop_reason = 0
        self.loop = asyncio.get_running_loop()
        self.progress = ProgressReporter(self)
        # A rerun counts from zero again; what an earlier run reported stands
        # until this one passes it (the services keep the highest value).
        self.progress.recorded(execution.progress)

    def request_stop(self, reason: int) -> None:
        """Ask the run to stop (``CANCEL``, ``RELEASE`` or ``ABANDON``); any thread."""

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
            self.request_stop(ABANDON)
        elif outcome == Outcome.DROPPED and record.type == EventType.LOG:
            self.log_cut = True
        elif outcome == Outcome.DROPPED:
            self.stream_cut = True

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
        if self.stop_reason == CANCEL:
            return await self.stop(running, ExecutionStatus.CANCELLED, log="Cancelled")
        await self.halt(running)
        if self.stop_reason == RELEASE:
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
            return output, None
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
        return output, None

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

    async def log(self, node_id: str | None, level: str, message: str) -> None:
        """Queue a log line (recorded in the loop's next batch), unless the log is cut."""
        if self.log_cut:
            return  # past the log's limits: nothing more is recorded
        self.record(EventType.LOG, log_data(node_id, level, message))
        await self.records.room()


class ProgressSlots:
    """Spaces the progress-only writes of all the executions of a process.

    Each execution records progress at most ``EXECUTIONS_PROGRESS_EVENTS_PER_SECOND``
    times a second; a process running hundreds of them at once would spend its
    database on progress and make every transition wait behind it. Here all of
    them together record at most ``EXECUTIONS_PROGRESS_EVENTS_PER_SECOND_TOTAL``
    a second: each gets the next free slot, so under load each one's progress
    moves in coarser steps and transitions keep their pace.
    """

    def __init__(self):
        self.next_free = float("-inf")

    def reserve(self, earliest: float) -> float:
        """Reserve the first free slot from ``earliest`` (loop time) on; its time."""
        slot = max(earliest, self.next_free)
        self.next_free = slot + 1 / settings.EXECUTIONS_PROGRESS_EVENTS_PER_SECOND_TOTAL
        return slot


# The runs of a process share one loop, so they share these.
progress_slots = ProgressSlots()


class ProgressReporter:
    """Records progress-only changes at most ``EXECUTIONS_PROGRESS_EVENTS_PER_SECOND``
    times a second per execution, in the process's slots (``ProgressSlots``); the
    latest value is always recorded."""

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
        now = loop.time()
        own = self.last_time + 1 / settings.EXECUTIONS_PROGRESS_EVENTS_PER_SECOND
        wait = progress_slots.reserve(max(now, own)) - now
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
            await self.run.write(services.execution_progress, progress=percent)
            self.sent = max(self.sent, percent)
        except Exception:
            # Progress is advisory: the next event carries it anyway; the run
            # itself notices a lost claim or an ended execution on its next write.
            logger.warning("Could not record progress of %s", self.run.id, exc_info=True)
            return
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
    global _watcher
    _active[run.id] = run
    if _watcher is None or _watcher.done():
        _watcher = asyncio.get_running_loop().create_task(_watch_runs())


async def _watch_runs() -> None:
    """Renew this process's claims and notice cancellations requested elsewhere,
    two queries for all runs, about once a second."""
    while _active:
        interval = min(
            settings.EXECUTIONS_CANCEL_POLL_INTERVAL, settings.EXECUTIONS_LEASE_SECONDS / 3
        )
        await asyncio.sleep(interval)
        runs = list(_active.values())
        try:
            held = await db(
                services.executions_lease_renew, claim_tokens=[r.claim_token for r in runs]
            )
            requested = await db(executions_cancel_requested, execution_ids=[r.id for r in runs])
        except Exception:
            logger.exception("Could not renew claims or check cancellations; retrying")
            continue
        metrics.leases_renewed(len(held))
        for run in runs:
            if run.claim_token not in held:
                metrics.claim_lost()
                run.request_stop(ABANDON)
            elif run.id in requested:
                run.request_stop(CANCEL)
