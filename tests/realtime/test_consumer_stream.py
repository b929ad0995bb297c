"""What a watcher receives: one snapshot, every change in order, then close 1000."""

from datetime import datetime, timedelta, timezone

import pytest
from channels.db import database_sync_to_async

from executions import services
from executions.clock import format_timestamp
from tests.factories import chain, make_execution, make_workflow, node
from tests.realtime.helpers import (
    STATUS_FIELDS,
    TIMESTAMP,
    assert_stream_matches_log,
    bearer,
    expected,
    open_socket,
    parsed,
    path_for,
    receive,
    receive_until_close,
    record,
    stored_events,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_snapshot_has_exactly_the_status_fields_as_of_the_latest_event(held_execution, token):
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    await record(
        services.execution_progress, execution_id=execution_id, message="Half way", progress=50
    )
    # The newest event is a log line: the snapshot is as of it, with the state before it.
    await record(
        services.execution_log, execution_id=execution_id, node_id="n", level="info", message="hi"
    )
    events = await stored_events(execution_id)
    # pending, "Execution started" log, running, progress, log
    assert [event.seq for event in events] == [1, 2, 3, 4, 5]
    assert [event.type for event in events] == ["status", "log", "status", "status", "log"]

    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        assert await socket.receive_nothing(timeout=0.1)

    assert set(snapshot) == STATUS_FIELDS
    assert snapshot == {
        "type": "status",
        "execution_id": str(execution_id),
        "status": "running",
        "progress": 50,
        "message": "Half way",
        "result": None,
        "error": None,
        "execution_time": None,
        "seq": 5,
        "timestamp": snapshot["timestamp"],
    }
    assert snapshot["timestamp"].endswith("Z") or snapshot["timestamp"].endswith("+00:00")
    assert parsed(snapshot)["timestamp"] == events[-1].created_at
    assert parsed(snapshot)["timestamp"].utcoffset().total_seconds() == 0


async def test_snapshot_then_each_change_in_order_then_close_1000(held_execution, token):
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        assert (snapshot["status"], snapshot["seq"]) == ("pending", 1)

        await record(services.execution_start, execution_id=execution_id)
        await record(services.execution_progress, execution_id=execution_id, message="a")
        await record(
            services.execution_log,
            execution_id=execution_id,
            node_id="a",
            level="warning",
            message="careful",
        )
        await record(
            services.execution_progress, execution_id=execution_id, message="b", progress=60
        )
        await record(services.execution_complete, execution_id=execution_id, result={"n": 1})
        messages, code = await receive_until_close(socket)

    events = await stored_events(execution_id)
    assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6, 7]
    assert [parsed(m) for m in messages] == [expected(e) for e in events[1:]]
    assert [m["type"] for m in messages] == ["log", "status", "status", "log", "status", "status"]
    assert messages[0] | {"timestamp": None} == {
        "type": "log",
        "execution_id": str(execution_id),
        "node_id": None,
        "level": "info",
        "message": "Execution started",
        "seq": 2,
        "timestamp": None,
    }
    assert (messages[1]["status"], messages[1]["seq"]) == ("running", 3)
    assert messages[-1]["status"] == "completed"
    assert messages[-1]["result"] == {"n": 1}
    assert messages[-1]["progress"] == 100
    assert code == 1000


async def test_real_run_streams_every_change_until_completed(user, token):
    workflow = await database_sync_to_async(make_workflow)(
        user,
        chain(
            node("wait", "delay", seconds=0.2),
            node("note", "log", message="noted", level="info"),
            node("pick", "transform", expression="x"),
        ),
    )
    execution = await database_sync_to_async(make_execution)(user, workflow, {"x": [5]})
    async with open_socket(path_for(execution.id), bearer(token)) as socket:
        messages, code = await receive_until_close(socket)

    assert code == 1000
    assert_stream_matches_log(messages, await stored_events(execution.id))
    final = messages[-1]
    assert (final["status"], final["progress"], final["result"]) == ("completed", 100, [5])
    assert final["error"] is None
    assert final["execution_time"] >= 0.2
    # The delay keeps the run going long enough to see changes live, not only a snapshot.
    assert len(messages) > 1


@pytest.mark.parametrize("outcome", ["completed", "failed"])
async def test_finished_execution_sends_its_final_snapshot_then_close_1000(
    held_execution, token, outcome
):
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    if outcome == "completed":
        await record(services.execution_complete, execution_id=execution_id, result=[1, 2])
    else:
        await record(services.execution_fail, execution_id=execution_id, error="it broke")

    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        messages, code = await receive_until_close(socket)

    events = await stored_events(execution_id)
    assert [parsed(m) for m in messages] == [expected(events[-1])]
    assert messages[0]["status"] == outcome
    assert isinstance(messages[0]["execution_time"], float)
    assert code == 1000


async def test_failing_workflow_ends_with_failed_status_naming_the_node(user, token):
    workflow = await database_sync_to_async(make_workflow)(
        user,
        chain(
            node("prepare", "delay", seconds=0.1),
            node("explode", "fail", message="disk is full"),
            node("never", "log", message="unreachable", level="info"),
        ),
    )
    execution = await database_sync_to_async(make_execution)(user, workflow)
    async with open_socket(path_for(execution.id), bearer(token)) as socket:
        messages, code = await receive_until_close(socket)

    assert code == 1000
    events = await stored_events(execution.id)
    assert_stream_matches_log(messages, events)
    final = messages[-1]
    assert final["status"] == "failed"
    assert "explode" in final["error"]
    assert "disk is full" in final["error"]
    assert final["result"] is None
    assert final["progress"] < 100
    assert not [e for e in events if e.type == "log" and e.data["node_id"] == "never"]


def test_timestamps_are_written_in_utc_with_microseconds():
    moment = datetime(2026, 1, 2, 5, 4, 5, 7, tzinfo=timezone(timedelta(hours=2)))
    text = format_timestamp(moment)
    assert TIMESTAMP.match(text)
    assert text.startswith("2026-01-02T03:04:05.000007")
    assert datetime.fromisoformat(text) == moment


async def test_events_reach_the_socket_without_a_hop_to_the_shared_sync_thread(
    held_execution, token, monkeypatch
):
    # Channels' own dispatch sends every message of every socket through one
    # shared thread first (to close its database connections); under load all
    # sockets of a server queue there. This consumer's handlers go straight on.
    hops = []

    async def count_hop():
        hops.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", count_hop)
    monkeypatch.setattr("channels.generic.websocket.aclose_old_connections", count_hop)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        await receive(socket)
        await socket.send_json_to({"type": "ping"})
        assert (await receive(socket))["type"] == "pong"
        await record(services.execution_start, execution_id=execution_id)
        await record(services.execution_complete, execution_id=execution_id, result=None)
        messages, code = await receive_until_close(socket)

    assert [m["seq"] for m in messages] == [2, 3, 4]
    assert code == 1000
    assert hops == []
