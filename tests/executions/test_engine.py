"""The DAG runner: data flow, branches, retries, timeouts, conditions, logs, progress."""

import asyncio
import itertools
from collections import Counter
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async

import tests.executions.nodes  # noqa: F401  registers the test node types
from executions import services
from executions.engine.runner import run_execution
from executions.models import Execution, Workflow
from executions.runners import local
from tests.executions.engine_helpers import create, reload, run, stored
from tests.factories import chain, make_user, node

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]


def edge(source: str, target: str) -> dict:
    return {"source": source, "target": target}


def node_events(events: list[dict]) -> Counter:
    return Counter((e["node_id"], e["status"], e["attempt"]) for e in events if e["type"] == "node")


def log_events(events: list[dict]) -> Counter:
    return Counter((e["node_id"], e["level"], e["message"]) for e in events if e["type"] == "log")


def statuses(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "status"]


RICH = {
    "nodes": [
        node("start", "log", message="begin", level="info"),
        {**node("wait", "delay", seconds=0.3), "weight": 2},
        {**node("retry", "test_flaky", fail_times=1), "retries": 2, "retry_backoff_seconds": 0.01},
        {
            **node("hang", "test_flaky", fail_times=1, mode="hang"),
            "timeout_seconds": 0.1,
            "retries": 1,
            "retry_backoff_seconds": 0.01,
        },
        node("gate", "condition", expression="go"),
        node("never", "log", message="never logged", level="error"),
        node("never_either", "transform", expression="@"),
        node("join", "transform", expression="{retry: retry.attempt, hang: hang.attempt}"),
        node("end", "log", message="done", level="warning"),
    ],
    "edges": [
        edge("start", "wait"),
        edge("start", "retry"),
        edge("start", "hang"),
        edge("start", "gate"),
        edge("gate", "never"),
        edge("never", "never_either"),
        edge("wait", "join"),
        edge("retry", "join"),
        edge("hang", "join"),
        edge("join", "end"),
    ],
}


async def test_rich_workflow_records_exactly_its_node_and_log_events():
    execution, events = await run(RICH, {"go": False})

    assert execution.status == "completed"
    assert execution.result == {"end": {"retry": 2, "hang": 2}, "never_either": None}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "status" and events[-1]["status"] == "completed"
    assert node_events(events) == Counter(
        {
            ("start", "running", 1): 1,
            ("start", "completed", 1): 1,
            ("wait", "running", 1): 1,
            ("wait", "completed", 1): 1,
            ("retry", "running", 1): 1,
            ("retry", "failed", 1): 1,
            ("retry", "running", 2): 1,
            ("retry", "completed", 2): 1,
            ("hang", "running", 1): 1,
            ("hang", "failed", 1): 1,
            ("hang", "running", 2): 1,
            ("hang", "completed", 2): 1,
            ("gate", "running", 1): 1,
            ("gate", "completed", 1): 1,
            ("never", "skipped", 0): 1,
            ("never_either", "skipped", 0): 1,
            ("join", "running", 1): 1,
            ("join", "completed", 1): 1,
            ("end", "running", 1): 1,
            ("end", "completed", 1): 1,
        }
    )
    assert log_events(events) == Counter(
        {
            (None, "info", "Execution started"): 1,
            ("start", "info", "begin"): 1,
            (
                None,
                "warning",
                "Node 'retry' attempt 1 of 3 failed: flaked on attempt 1; retrying in 0.01 s",
            ): 1,
            (None, "warning", "Node 'hang' timed out after 0.1 s"): 1,
            (
                None,
                "warning",
                "Node 'hang' attempt 1 of 2 failed: timed out after 0.1 s; retrying in 0.01 s",
            ): 1,
            ("gate", "info", "Condition 'go' is false: skipping downstream"): 1,
            ("end", "warning", "done"): 1,
        }
    )


async def test_node_events_carry_type_attempt_output_error_and_duration():
    execution, events = await run(RICH, {"go": False})
    by_key = {(e["node_id"], e["status"], e["attempt"]): e for e in events if e["type"] == "node"}

    failed = by_key[("retry", "failed", 1)]
    assert failed["node_type"] == "test_flaky"
    assert failed["error"] == "flaked on attempt 1"
    assert "output" not in failed and failed["duration"] >= 0
    completed = by_key[("join", "completed", 1)]
    assert completed["output"] == {"retry": 2, "hang": 2}
    assert "error" not in completed
    assert by_key[("wait", "completed", 1)]["duration"] >= 0.3
    running = by_key[("wait", "running", 1)]
    assert set(running) - {"type", "seq", "created_at"} == {
        "node_id",
        "node_type",
        "status",
        "attempt",
    }
    skipped = by_key[("never", "skipped", 0)]
    assert "duration" not in skipped and "output" not in skipped
    nodes = {run.node_id: run for run in execution.nodes.all()}
    assert nodes["retry"].attempts == 2 and nodes["retry"].status == "completed"
    assert nodes["never"].status == "skipped" and nodes["never"].attempts == 0
    assert nodes["join"].output == {"retry": 2, "hang": 2}


async def test_progress_is_monotonic_weighted_and_ends_at_100():
    execution, events = await run(RICH, {"go": False})
    progress = [e["progress"] for e in statuses(events)]
    assert progress == sorted(progress)
    assert progress[-1] == 100 and execution.progress == 100
    assert all(0 <= p <= 100 for p in progress)


@pytest.mark.parametrize("go", [False, True])
async def test_last_node_completion_and_terminal_status_are_recorded_together(go):
    execution, events = await run(RICH, {"go": go})
    assert (execution.status, execution.progress) == ("completed", 100)
    assert execution.result["end"] == {"retry": 2, "hang": 2}
    last_node, terminal = events[-2:]
    assert (last_node["type"], last_node["status"]) == ("node", "completed")
    assert last_node["node_id"] == "end"
    assert (terminal["type"], terminal["status"], terminal["progress"]) == (
        "status",
        "completed",
        100,
    )
    # No "running at 100%" before the end: the stream says completed at once.
    assert not [e for e in statuses(events) if e["status"] == "running" and e["progress"] == 100]


async def test_truthy_condition_runs_downstream():
    execution, events = await run(RICH, {"go": True})
    assert execution.result["never_either"] == {"go": True}
    assert not [e for e in events if e["type"] == "node" and e["status"] == "skipped"]


async def test_data_flow_roots_parents_and_sinks():
    definition = {
        "nodes": [
            node("a", "transform", expression="x"),
            node("b", "transform", expression="y"),
            node("both", "transform", expression="[a, b]"),
            node("double", "transform", expression="[@, @]"),
        ],
        "edges": [edge("a", "both"), edge("b", "both"), edge("a", "double")],
    }
    execution, _ = await run(definition, {"x": 1, "y": 2})
    assert execution.result == {"both": [1, 2], "double": [1, 1]}


async def test_a_failed_node_fails_the_execution_and_nothing_downstream_runs():
    definition = {
        "nodes": [
            node("pause", "delay", seconds=0.2),
            node("boom", "fail", message="kaput"),
            node("after", "log", message="unreachable"),
            node("slow", "delay", seconds=30),
        ],
        "edges": [edge("pause", "boom"), edge("boom", "after")],
    }
    execution, events = await run(definition)

    assert execution.status == "failed"
    assert execution.error == "Node 'boom' failed: kaput"
    assert execution.result is None and execution.execution_time is not None
    assert node_events(events) == Counter(
        {
            ("pause", "running", 1): 1,
            ("pause", "completed", 1): 1,
            ("boom", "running", 1): 1,
            ("boom", "failed", 1): 1,
            ("slow", "running", 1): 1,
            ("slow", "cancelled", 1): 1,
            ("after", "skipped", 0): 1,
        }
    )
    assert events[-1]["type"] == "status" and events[-1]["status"] == "failed"
    assert execution.execution_time < 5


async def test_retries_exhausted_fail_with_the_last_error():
    definition = chain(
        {**node("flaky", "test_flaky", fail_times=5), "retries": 1, "retry_backoff_seconds": 0}
    )
    execution, events = await run(definition)
    assert execution.status == "failed"
    assert execution.error == "Node 'flaky' failed: flaked on attempt 2"
    assert node_events(events)[("flaky", "failed", 2)] == 1


async def test_retry_backoff_doubles():
    definition = chain(
        {**node("flaky", "test_flaky", fail_times=2), "retries": 2, "retry_backoff_seconds": 0.2}
    )
    _, events = await run(definition)
    starts = [e["created_at"] for e in events if e["type"] == "node" and e["status"] == "running"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert gaps[0] >= timedelta(seconds=0.2) and gaps[1] >= timedelta(seconds=0.4)


async def test_progress_only_events_are_coalesced_and_the_latest_delivered():
    definition = chain(node("chatty", "test_chatty", updates=100, interval=0.01))
    execution, events = await run(definition)
    progress_only = progress_only_events(events)
    (completed,) = [e for e in events if e["type"] == "node" and e["status"] == "completed"]
    # The node's updates took about a second (longer on a busy machine): at
    # most 5 events a second of it, the first at once.
    assert 2 <= len(progress_only) <= 5 * completed["duration"] + 2
    # Each is recorded after its decision by the time a database write takes,
    # which varies: pairs may come closer than 0.2 s, but never together, and
    # no second holds more than 5.
    times = [e["created_at"] for e in progress_only]
    assert min(gaps(times), default=timedelta.max) >= timedelta(seconds=0.1)
    assert min(gaps(times, apart=5), default=timedelta.max) >= timedelta(seconds=0.9)
    values = [e["progress"] for e in progress_only]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert execution.progress == 100


def gaps(times: list, apart: int = 1) -> list[timedelta]:
    """The time between each entry and the one ``apart`` places after it."""
    return [later - earlier for earlier, later in zip(times, times[apart:], strict=False)]


def progress_only_events(events: list[dict]) -> list[dict]:
    status_events = statuses(events)
    return [
        later
        for earlier, later in itertools.pairwise(status_events)
        if later["message"] == earlier["message"] and later["status"] == "running"
    ]


async def test_the_executions_of_a_process_share_its_progress_budget(settings):
    settings.EXECUTIONS_PROGRESS_EVENTS_PER_SECOND_TOTAL = 4
    definition = chain(node("chatty", "test_chatty", updates=100, interval=0.01))
    runs = await asyncio.gather(*[run(definition) for _ in range(4)])
    # Each may record 5 a second, but the four together only 4 a second (give
    # or take how long each write took to be dated, as above).
    times = sorted(e["created_at"] for _, events in runs for e in progress_only_events(events))
    assert len(times) >= 2
    assert min(gaps(times)) >= timedelta(seconds=0.1)
    assert min(gaps(times, apart=4), default=timedelta.max) >= timedelta(seconds=0.9)
    assert [execution.progress for execution, _ in runs] == [100] * 4


async def test_delay_reports_progress_while_waiting():
    definition = chain(node("wait", "delay", seconds=1.2))
    _, events = await run(definition)
    during = [
        e["progress"] for e in statuses(events) if e["message"] == "Running node 'wait' (1/1)"
    ]
    assert any(0 < p < 100 for p in during)


async def test_custom_node_type_registered_by_another_app():
    execution, events = await run(chain(node("loud", "test_shout", field="name")), {"name": "ada"})
    assert execution.result == {"name": "ADA"}
    assert log_events(events)[("loud", "info", "shouting name")] == 1


async def test_branches_run_concurrently():
    # Each node waits for all four to be running at once: one after another,
    # the first would give up after its timeout and fail the execution.
    definition = {
        "nodes": [node(f"d{i}", "test_rendezvous", count=4, timeout=30) for i in range(4)],
        "edges": [],
    }
    execution, _ = await run(definition)
    assert execution.status == "completed", execution.error
    assert execution.result == {f"d{i}": {"together": 4} for i in range(4)}


async def test_branches_beyond_the_parallel_limit_wait_their_turn(settings):
    settings.EXECUTIONS_MAX_PARALLEL_NODES = 3
    definition = {
        "nodes": [node(f"d{i}", "test_rendezvous", count=4, timeout=0.5) for i in range(4)],
        "edges": [],
    }
    execution, _ = await run(definition)
    assert execution.status == "failed"
    assert "3 of 4 nodes ran at once" in execution.error


@database_sync_to_async
def edit_workflow(execution, definition: dict) -> None:
    workflow = Workflow.objects.get(id=execution.workflow_id)
    services.workflow_update(workflow=workflow, definition=definition)


BEFORE_EDIT = chain(node("before", "transform", expression="a"))
AFTER_EDIT = chain(node("after", "transform", expression="b"), node("more", "log", message="m"))


async def test_an_execution_runs_the_definition_it_was_created_with():
    execution = await create(BEFORE_EDIT, {"a": "old", "b": "new"})
    await edit_workflow(execution, AFTER_EDIT)

    await run_execution(execution.id)

    execution = await reload(execution)
    assert (execution.status, execution.result) == ("completed", "old")
    assert [run.node_id for run in execution.nodes.all()] == ["before"]
    assert execution.definition == BEFORE_EDIT


@database_sync_to_async
def claimed_then_lost(definition: dict, input_data: dict) -> Execution:
    """An execution of a workflow safe to repeat, claimed and then handed back."""
    user = make_user()
    workflow = services.workflow_create(
        owner=user, name="repeatable", definition=definition, retry_on_worker_loss=True
    )
    execution = services.execution_create(owner=user, workflow=workflow, input_data=input_data)
    claimed = services.execution_start(execution_id=execution.id, runner="lost")
    services.workflow_update(workflow=workflow, definition=AFTER_EDIT)
    services.execution_interrupt(
        execution_id=execution.id, reason="Runner lost shut down", claim_token=claimed.claim_token
    )
    return Execution.objects.get(id=execution.id)


async def test_a_rerun_after_a_lost_worker_runs_the_definition_it_was_created_with():
    execution = await claimed_then_lost(BEFORE_EDIT, {"a": "old", "b": "new"})
    assert execution.status == "pending"

    await run_execution(execution.id)

    execution = await reload(execution)
    assert (execution.status, execution.result, execution.runs) == ("completed", "old", 2)
    assert [run.node_id for run in execution.nodes.all()] == ["before"]


async def test_a_run_stopped_from_outside_leaves_no_node_running():
    execution = await create(chain(node("wait", "delay", seconds=30)))
    local.run_here(execution.id)
    await wait_until_node_running(execution.id, "wait")

    local.stop_in_process_runs()

    leftovers = asyncio.run_coroutine_threadsafe(
        tasks_named("run_node"), local.in_process_loop.loop
    ).result(5)
    assert leftovers == []


async def wait_until_node_running(execution_id, node_id: str) -> None:
    """Until the node's running event is in the log (each check is a database read)."""
    for _ in range(500):
        events = await stored(execution_id)
        if any(e["type"] == "node" and e["status"] == "running" for e in events):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"node {node_id} never started")


async def tasks_named(name: str) -> list[asyncio.Task]:
    """The unfinished tasks of the running loop whose coroutine is ``name``."""
    return [
        task for task in asyncio.all_tasks() if task.get_coro().__name__ == name and not task.done()
    ]
