"""Every subscriber sees each event once, in order, whatever the channel layer and timing do."""

from contextlib import AsyncExitStack

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

import realtime.signals
import realtime.subscription
from executions import services
from tests.factories import make_execution, make_workflow, node
from tests.realtime.helpers import (
    Publisher,
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


async def record_run(execution_id, steps: int = 8) -> None:
    """Start (a log line, then ``running``), ``steps`` progress updates and log lines,
    then complete."""
    await record(services.execution_start, execution_id=execution_id)
    for step in range(1, steps + 1):
        await record(
            services.execution_progress,
            execution_id=execution_id,
            message=f"step {step}",
            progress=step * 10,
        )
        await record(
            services.execution_log,
            execution_id=execution_id,
            node_id=f"n{step}",
            level="info",
            message=f"log {step}",
        )
    await record(services.execution_complete, execution_id=execution_id, result={"steps": steps})


async def test_several_subscribers_see_identical_complete_streams(held_execution, token):
    execution_id = held_execution.id
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(open_socket(path_for(execution_id), bearer(token)))
            for _ in range(4)
        ]
        snapshots = [await receive(socket) for socket in sockets]
        await record_run(execution_id)
        streams = [await receive_until_close(socket) for socket in sockets]

    events = await stored_events(execution_id)
    # pending, "Execution started" log, running, 8 x (progress, log), completed
    assert len(events) == 20
    assert [event.type for event in events] == [
        "status",
        "log",
        "status",
        *["status", "log"] * 8,
        "status",
    ]
    for snapshot, (messages, code) in zip(snapshots, streams, strict=True):
        assert code == 1000
        assert_stream_matches_log([snapshot, *messages], events)
    assert all(stream == streams[0] for stream in streams)
    assert all(snapshot == snapshots[0] for snapshot in snapshots)


async def test_subscribers_of_concurrent_real_runs_see_identical_gap_free_streams(user, token):
    definition = {
        "nodes": [
            node("start", "delay", seconds=0),
            node("left", "delay", seconds=0.05),
            node("right", "log", message="right side", level="info"),
            node("join", "transform", expression="left"),
        ],
        "edges": [
            {"source": "start", "target": "left"},
            {"source": "start", "target": "right"},
            {"source": "left", "target": "join"},
            {"source": "right", "target": "join"},
        ],
    }
    workflow = await database_sync_to_async(make_workflow)(user, definition)
    executions = [
        await database_sync_to_async(make_execution)(user, workflow, {"run": i}) for i in range(5)
    ]
    async with AsyncExitStack() as stack:
        sockets = {
            (execution.id, i): await stack.enter_async_context(
                open_socket(path_for(execution.id, "last_seq=0"), bearer(token))
            )
            for execution in executions
            for i in range(3)
        }
        streams = {key: await receive_until_close(socket) for key, socket in sockets.items()}

    for execution in executions:
        events = await stored_events(execution.id)
        assert events[-1].data["status"] == "completed"
        assert events[-1].data["result"] == {"run": executions.index(execution)}
        for i in range(3):
            messages, code = streams[execution.id, i]
            assert code == 1000
            assert [parsed(m) for m in messages] == [expected(e) for e in events]


async def test_an_event_delivered_several_times_is_sent_once(held_execution, token, monkeypatch):
    Publisher(monkeypatch, repeat=3)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        await record_run(execution_id, steps=3)
        messages, code = await receive_until_close(socket)

    assert code == 1000
    assert_stream_matches_log([snapshot, *messages], await stored_events(execution_id))


async def test_an_event_overtaken_by_a_later_one_is_sent_once_in_its_place(
    held_execution, token, monkeypatch
):
    # The layer delivers 4 before 3: the socket fills 3 from the log, then drops the late 3.
    original = realtime.signals.publish_many
    held = []

    def publish_out_of_order(messages):
        for group, message in messages:
            seq = message.get("event", {}).get("seq")
            if seq == 3:
                held.append((group, message))
                continue
            original([(group, message)])
            if seq == 4:
                original([held.pop()])

    monkeypatch.setattr(realtime.signals, "publish_many", publish_out_of_order)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        await record_run(execution_id, steps=2)
        messages, code = await receive_until_close(socket)

    assert held == []
    assert code == 1000
    assert_stream_matches_log([snapshot, *messages], await stored_events(execution_id))


class Interleave:
    """Records a change of the execution at chosen steps of the consumer's connect.

    A step is ``"before group_listen"``, ``"after group_listen"`` (the subscription) or
    ``"after <name>"`` for a database read of ``realtime.subscription``.
    """

    def __init__(self, monkeypatch, execution_id, steps: list[str]):
        self.execution_id = execution_id
        self.active = True
        self.recorded: list[str] = []
        layer = get_channel_layer()
        group_listen = layer.group_listen

        async def group_listen_between_changes(group, listener):
            if "before group_listen" in steps:
                await database_sync_to_async(self.change)("before group_listen")
            await group_listen(group, listener)
            if "after group_listen" in steps:
                await database_sync_to_async(self.change)("after group_listen")

        monkeypatch.setattr(layer, "group_listen", group_listen_between_changes)
        for step in steps:
            name = step.removeprefix("after ")
            if name != "group_listen" and step.startswith("after "):
                monkeypatch.setattr(realtime.subscription, name, self.after(name))

    def after(self, name: str):
        read = getattr(realtime.subscription, name)

        def read_then_change(*args, **kwargs):
            result = read(*args, **kwargs)
            self.change(f"after {name}")
            return result

        return read_then_change

    def change(self, step: str) -> None:
        if self.active:
            self.recorded.append(step)
            services.execution_progress(execution_id=self.execution_id, message=step)


BEFORE_SUBSCRIBING = "before group_listen"
AFTER_SUBSCRIBING = "after group_listen"
AFTER_READING = "after execution_visible_to"


@pytest.mark.parametrize(
    ("query", "steps"),
    [
        ("", [BEFORE_SUBSCRIBING]),
        ("", [AFTER_SUBSCRIBING]),
        ("", [AFTER_READING]),
        ("", [BEFORE_SUBSCRIBING, AFTER_SUBSCRIBING, AFTER_READING]),
        ("last_seq=1", [BEFORE_SUBSCRIBING]),
        ("last_seq=1", [AFTER_SUBSCRIBING]),
        ("last_seq=1", [AFTER_READING]),
        ("last_seq=1", ["after events_after"]),
        (
            "last_seq=1",
            [BEFORE_SUBSCRIBING, AFTER_SUBSCRIBING, AFTER_READING, "after events_after"],
        ),
    ],
)
async def test_events_recorded_while_connecting_are_sent_once(
    held_execution, token, monkeypatch, settings, query, steps
):
    # Neither the watchdog nor a later event's gap fill may cover for a lost one here.
    settings.REALTIME_RECHECK_INTERVAL = 600
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    interleave = Interleave(monkeypatch, execution_id, steps)
    async with open_socket(path_for(execution_id, query), bearer(token)) as socket:
        messages = [await receive(socket)]
        interleave.active = False
        head = len(await stored_events(execution_id))
        while messages[-1]["seq"] < head:
            messages.append(await receive(socket))
        await record(services.execution_complete, execution_id=execution_id, result=None)
        rest, code = await receive_until_close(socket)

    # Every hooked step ran during connect and recorded a change in that window.
    assert set(interleave.recorded) == set(steps)
    events = await stored_events(execution_id)
    # pending, "Execution started" log, running, one per recorded step, completed
    assert len(events) == head + 1 == 4 + len(interleave.recorded)
    assert [e.data.get("message") for e in events[3:-1]] == interleave.recorded
    assert code == 1000
    if query:
        assert [parsed(m) for m in [*messages, *rest]] == [expected(e) for e in events[1:]]
    else:
        assert_stream_matches_log([*messages, *rest], events)
