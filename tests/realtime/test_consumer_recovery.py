"""Events the channel layer loses still reach every subscriber, from the event log."""

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest
from django.utils import timezone

import realtime.signals
import realtime.watchdog
from executions import services
from tests.realtime.helpers import (
    Publisher,
    assert_stream_matches_log,
    bearer,
    expected,
    open_socket,
    parsed,
    path_for,
    receive,
    receive_close,
    receive_until_close,
    record,
    stored_events,
)

pytestmark = pytest.mark.django_db(transaction=True)

# The bound: a terminal event reaches every subscriber this soon after it is recorded.
TERMINAL_BOUND = timedelta(seconds=3)


class HeadChecks:
    """Lets a test wait for the watchdog's next read of the log heads."""

    def __init__(self, monkeypatch):
        self.loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        read = realtime.watchdog.execution_heads

        def read_and_tell(execution_ids):
            heads = read(execution_ids)
            self.loop.call_soon_threadsafe(self.done.set)
            return heads

        monkeypatch.setattr(realtime.watchdog, "execution_heads", read_and_tell)

    async def next(self) -> None:
        self.done.clear()
        await asyncio.wait_for(self.done.wait(), timeout=5)


async def test_dropped_events_are_filled_from_the_log_when_a_later_one_arrives(
    held_execution, token, monkeypatch, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 600  # so only the gap fill can recover them
    # 2 and 3 are the start ("Execution started" log, running); 4 and 5 are lost.
    publisher = Publisher(monkeypatch, drop=lambda event: event["seq"] in (4, 5))
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        await record(services.execution_start, execution_id=execution_id)
        started = [await receive(socket), await receive(socket)]
        await record(services.execution_progress, execution_id=execution_id, message="lost")
        await record(
            services.execution_log,
            execution_id=execution_id,
            node_id="n",
            level="info",
            message="lost too",
        )
        assert await socket.receive_nothing(timeout=0.2)  # really lost
        await record(services.execution_progress, execution_id=execution_id, message="found")
        recovered = [await receive(socket) for _ in range(3)]
        await record(services.execution_complete, execution_id=execution_id, result=None)
        messages, code = await receive_until_close(socket)

    assert publisher.dropped == [4, 5]
    events = await stored_events(execution_id)
    assert [parsed(m) for m in [*started, *recovered]] == [expected(e) for e in events[1:6]]
    assert [m["seq"] for m in recovered] == [4, 5, 6]
    assert_stream_matches_log([snapshot, *started, *recovered, *messages], events)
    assert code == 1000


async def test_dropped_terminal_event_reaches_every_subscriber_within_3_seconds(
    held_execution, token, monkeypatch
):
    publisher = Publisher(monkeypatch, drop=lambda event: event.get("status") == "completed")
    checks = HeadChecks(monkeypatch)
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(
                open_socket(path_for(execution_id, query), bearer(token))
            )
            for query in ("", "", "last_seq=1")
        ]
        snapshots = [await receive(socket) for socket in sockets[:2]]
        resumed = [await receive(sockets[2]) for _ in range(2)]  # the start's log and status
        # Worst case: the watchdog has just read the heads, so it sees the event a full
        # interval later and, still missing it one interval after that, catches up.
        await checks.next()
        finished = await record(services.execution_complete, execution_id=execution_id, result=7)
        last = []
        for socket in sockets:
            last.append(await receive(socket))
            assert timezone.now() - finished.last_event_at <= TERMINAL_BOUND
        codes = [await receive_close(socket) for socket in sockets]

    assert publisher.dropped == [4]
    events = await stored_events(execution_id)
    assert [event.type for event in events] == ["status", "log", "status", "status"]
    assert [parsed(m) for m in snapshots] == [expected(events[2])] * 2
    assert [parsed(m) for m in resumed] == [expected(events[1]), expected(events[2])]
    assert [parsed(m) for m in last] == [expected(events[3])] * 3
    assert codes == [1000, 1000, 1000]


async def test_with_every_event_dropped_the_stream_is_still_complete(
    held_execution, token, monkeypatch
):
    publisher = Publisher(monkeypatch, drop=lambda event: True)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        await record(services.execution_start, execution_id=execution_id)
        await record(services.execution_progress, execution_id=execution_id, message="a")
        await record(
            services.execution_log,
            execution_id=execution_id,
            node_id="a",
            level="info",
            message="l",
        )
        finished = await record(
            services.execution_fail, execution_id=execution_id, error="Node 'a' failed: no"
        )
        messages, code = await receive_until_close(socket)
        arrived = timezone.now()

    # 2 and 3 are the start: its "Execution started" log, then running.
    assert publisher.dropped == [2, 3, 4, 5, 6]
    assert arrived - finished.last_event_at <= TERMINAL_BOUND
    assert_stream_matches_log([snapshot, *messages], await stored_events(execution_id))
    assert [m["seq"] for m in messages] == [2, 3, 4, 5, 6]
    assert code == 1000


async def test_late_copy_of_an_event_the_watchdog_already_sent_is_dropped(
    held_execution, token, monkeypatch
):
    original = realtime.signals.publish_many
    held = []

    # 2 and 3 are the start ("Execution started" log, running); 4 is the one held back.
    def hold_seq_4(messages):
        for group, message in messages:
            if message.get("event", {}).get("seq") == 4:
                held.append((group, message))
            else:
                original([(group, message)])

    monkeypatch.setattr(realtime.signals, "publish_many", hold_seq_4)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        await record(services.execution_start, execution_id=execution_id)
        await record(services.execution_progress, execution_id=execution_id, message="late")
        before = [await receive(socket) for _ in range(3)]  # 4 comes from the log
        original([held.pop()])  # the layer delivers its copy of 4 after all
        await record(services.execution_complete, execution_id=execution_id, result=None)
        messages, code = await receive_until_close(socket)

    events = await stored_events(execution_id)
    assert [m["seq"] for m in before] == [2, 3, 4]
    assert_stream_matches_log([snapshot, *before, *messages], events)
    assert code == 1000
