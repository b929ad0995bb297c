"""What one execution may store: each node's output, all of them together, and
the input the engine assembles for a node with several parents."""

import json

import pytest

import tests.executions.nodes  # noqa: F401  registers the test node types
from executions.engine import recorder, runner
from executions.engine.outputs import json_size
from tests.executions.engine_helpers import run
from tests.factories import chain, node

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]

INPUT = {"text": "x" * 300}
SIZE = len(json.dumps(INPUT))


def node_events(events: list[dict]) -> list[tuple]:
    return [(e["node_id"], e["status"]) for e in events if e["type"] == "node"]


def outputs(execution) -> dict:
    return {n.node_id: n.output for n in execution.nodes.all()}


def assert_ends_last_and_gap_free(events: list[dict], status: str) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert (events[-1]["type"], events[-1]["status"]) == ("status", status)


def delays(count: int) -> dict:
    return chain(*(node(f"d{i}", "delay", seconds=0) for i in range(1, count + 1)))


async def test_an_output_over_the_node_limit_fails_its_node_and_is_not_stored(settings):
    settings.EXECUTIONS_MAX_NODE_OUTPUT_BYTES = SIZE - 1

    execution, events = await run(delays(2), INPUT)

    assert execution.status == "failed"
    assert "EXECUTIONS_MAX_NODE_OUTPUT_BYTES" in execution.error
    assert execution.error.startswith("Node 'd1' failed: its output is over")
    assert node_events(events) == [("d1", "running"), ("d1", "failed"), ("d2", "skipped")]
    assert outputs(execution) == {"d1": None, "d2": None}
    assert execution.result is None
    assert_ends_last_and_gap_free(events, "failed")


async def test_an_output_at_the_node_limit_is_stored(settings):
    settings.EXECUTIONS_MAX_NODE_OUTPUT_BYTES = SIZE

    execution, _ = await run(delays(2), INPUT)

    assert execution.status == "completed"
    assert outputs(execution) == {"d1": INPUT, "d2": INPUT}


async def test_the_node_whose_output_passes_the_execution_limit_fails_the_execution(settings):
    # The null result (4 bytes) and three outputs fit; the fourth does not.
    settings.EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES = 4 + 3 * SIZE

    execution, events = await run(delays(5), INPUT)

    assert execution.status == "failed"
    assert execution.error.startswith("Node 'd4' failed: its output (")
    assert "EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES" in execution.error
    assert [(n, s) for n, s in node_events(events) if s != "running"] == [
        ("d1", "completed"),
        ("d2", "completed"),
        ("d3", "completed"),
        ("d4", "failed"),
        ("d5", "skipped"),
    ]
    assert outputs(execution) == {"d1": INPUT, "d2": INPUT, "d3": INPUT, "d4": None, "d5": None}
    assert_ends_last_and_gap_free(events, "failed")


@pytest.mark.parametrize(("room", "status"), [(0, "completed"), (-1, "failed")])
async def test_the_result_counts_against_the_execution_limit(settings, room, status):
    # d1's output, then d2's twice: on its node and as the result.
    settings.EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES = 3 * SIZE + room

    execution, _ = await run(delays(2), INPUT)

    assert execution.status == status
    assert (execution.result == INPUT) is (status == "completed")


async def test_a_fan_in_over_the_node_limit_fails_before_its_input_is_built(settings, monkeypatch):
    settings.EXECUTIONS_MAX_NODE_OUTPUT_BYTES = 2 * SIZE
    built: list[str] = []
    node_input = runner.Run.node_input
    monkeypatch.setattr(
        runner.Run,
        "node_input",
        lambda run, node_id: built.append(node_id) or node_input(run, node_id),
    )
    parents = [node(name, "delay", seconds=0) for name in ("a", "b", "c")]
    definition = {
        "nodes": [*parents, node("join", "transform", expression="a")],
        "edges": [{"source": p["id"], "target": "join"} for p in parents],
    }

    execution, events = await run(definition, INPUT)

    assert execution.status == "failed"
    assert execution.error.startswith(
        "Node 'join' failed: its input, the outputs of its 3 parents, would be "
        f"{2 + 3 * (3 + 2 + SIZE) + 4} bytes of JSON"
    )
    assert "EXECUTIONS_MAX_NODE_OUTPUT_BYTES" in execution.error
    assert sorted(built) == ["a", "b", "c"]
    assert ("join", "failed") in node_events(events)
    assert_ends_last_and_gap_free(events, "failed")


def test_measuring_stops_once_past_the_limit():
    # A list of a million references to one value: 10 GB as JSON, never built.
    value = ["y" * 10_000] * 1_000_000

    size = json_size(value, stop_after=50_000)

    assert 50_000 < size <= 50_000 + 10_010
    assert json_size(INPUT, stop_after=10**9) == SIZE


async def test_a_run_past_the_log_limit_records_one_warning_and_every_other_event(
    settings, monkeypatch
):
    settings.EXECUTIONS_MAX_LOG_LINES = 5
    calls: list[str] = []
    events_record = recorder.events_record

    def counted(*, records):
        calls.extend(r.data["message"] for r in records if r.type == "log")
        return events_record(records=records)

    monkeypatch.setattr(recorder, "events_record", counted)
    definition = chain(
        node("first", "test_chatter", lines=8),
        node("wait", "delay", seconds=0),
        node("last", "test_chatter", lines=3),
    )

    execution, events = await run(definition, INPUT)

    assert execution.status == "completed"
    logs = [(e["node_id"], e["level"], e["message"]) for e in events if e["type"] == "log"]
    assert logs[0] == (None, "info", "Execution started")
    assert logs[1:6] == [("first", "info", f"first line {i}") for i in range(1, 6)]
    assert logs[6][:2] == (None, "warning")
    assert "EXECUTIONS_MAX_LOG_LINES" in logs[6][2]
    assert len(logs) == 7, "nothing after the warning"
    # The runner stopped asking once it knew the log was cut: the lines queued
    # with the cutting one were asked for, no later node's.
    assert calls[:6] == [f"first line {i}" for i in range(1, 7)]
    assert set(calls) <= {f"first line {i}" for i in range(1, 9)}
    assert [(n, s) for n, s in node_events(events) if s != "running"] == [
        ("first", "completed"),
        ("wait", "completed"),
        ("last", "completed"),
    ]
    assert_ends_last_and_gap_free(events, "completed")
