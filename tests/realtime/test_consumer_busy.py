"""A socket busy sending a long resume still answers pings and counts them as activity."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from executions import services
from realtime.consumers import ExecutionConsumer
from realtime.subscription import CATCH_UP_PAGE, ExecutionSubscription
from tests.realtime.helpers import (
    Publisher,
    assert_open,
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

IDLE_TIMEOUT = 1.0
RECHECK_INTERVAL = 0.05


@database_sync_to_async
def record_log_lines(execution_id, count: int) -> None:
    for n in range(count):
        services.execution_log(
            execution_id=execution_id, node_id="n", level="info", message=f"line {n}"
        )


class HeldSend:
    """Holds the send of one event (as a client that reads slowly would) until released."""

    def __init__(self, monkeypatch, seq: int):
        self.reached = asyncio.Event()
        self.released = asyncio.Event()
        forward = ExecutionSubscription.forward

        async def held_forward(consumer, message):
            if message["seq"] == seq:
                self.reached.set()
                await self.released.wait()
            await forward(consumer, message)

        monkeypatch.setattr(ExecutionSubscription, "forward", held_forward)


class ClockChecks:
    """Lets a test await the watchdog's next idle checks of its socket."""

    def __init__(self, monkeypatch):
        self.checked = asyncio.Event()
        observe = ExecutionConsumer.observe_clock

        def observe_and_tell(consumer, now):
            observe(consumer, now)
            self.checked.set()

        monkeypatch.setattr(ExecutionConsumer, "observe_clock", observe_and_tell)

    async def next(self, count: int) -> None:
        for _ in range(count):
            self.checked.clear()
            await asyncio.wait_for(self.checked.wait(), timeout=5)


async def test_pings_are_answered_during_a_long_resume_and_keep_the_socket_from_idling(
    held_execution, token, monkeypatch, settings
):
    settings.REALTIME_IDLE_TIMEOUT = IDLE_TIMEOUT
    settings.REALTIME_RECHECK_INTERVAL = RECHECK_INTERVAL
    execution_id = held_execution.id
    stored = CATCH_UP_PAGE + CATCH_UP_PAGE // 2
    await record_log_lines(execution_id, stored - 1)  # seqs 1..stored
    held_at = CATCH_UP_PAGE // 2
    send = HeldSend(monkeypatch, held_at)
    clock = ClockChecks(monkeypatch)
    loop = asyncio.get_running_loop()
    async with open_socket(path_for(execution_id, "last_seq=0"), bearer(token)) as socket:
        resumed = [await receive(socket) for _ in range(held_at - 1)]
        await asyncio.wait_for(send.reached.wait(), 5)
        # The resume is stuck mid-page for two idle limits, while the client pings four
        # times per idle limit (well under REALTIME_MAX_MESSAGES_PER_SECOND).
        stuck_since = loop.time()
        last_ping = stuck_since - IDLE_TIMEOUT  # the first ping goes at once
        pongs = 0
        while loop.time() - stuck_since < 2 * IDLE_TIMEOUT:
            if loop.time() - last_ping >= IDLE_TIMEOUT / 4:
                await socket.send_json_to({"type": "ping"})
                assert await receive(socket) == {"type": "pong"}
                last_ping = loop.time()
                pongs += 1
            await clock.next(1)
        # A live event recorded meanwhile comes once, in its place.
        await record(services.execution_progress, execution_id=execution_id, message="live")
        send.released.set()
        resumed += [await receive(socket) for _ in range(stored + 2 - held_at)]
        await assert_open(socket)

    events = await stored_events(execution_id)
    assert len(events) == stored + 1
    assert [parsed(m) for m in resumed] == [expected(e) for e in events]
    assert pongs >= 3


async def test_pings_are_answered_while_a_gap_is_filled_from_the_log(
    held_execution, token, monkeypatch, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 600  # only the gap fill reads the log
    Publisher(monkeypatch, drop=lambda event: event["seq"] == 2)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        assert (await receive(socket))["seq"] == 1
        send = HeldSend(monkeypatch, 3)
        # Start: 2 is lost, so 3 comes after a gap; the fill sends 2, then 3 is held.
        await record(services.execution_start, execution_id=execution_id)
        assert (await receive(socket))["seq"] == 2
        await asyncio.wait_for(send.reached.wait(), 5)
        await socket.send_json_to({"type": "ping"})
        assert await receive(socket) == {"type": "pong"}
        send.released.set()
        assert (await receive(socket))["seq"] == 3
        await assert_open(socket)


async def test_a_close_decided_during_a_resume_of_a_finished_execution_is_not_a_1000(
    held_execution, user, token, monkeypatch, settings
):
    """1000 would tell the client the stream is complete; it has not had the end yet."""
    settings.REALTIME_RECHECK_INTERVAL = RECHECK_INTERVAL
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    await record(services.execution_complete, execution_id=execution_id, result=None)
    send = HeldSend(monkeypatch, 2)
    closing = asyncio.Event()
    close_soon = ExecutionConsumer.close_soon

    def close_soon_and_tell(consumer, text, code):
        close_soon(consumer, text, code)
        closing.set()

    monkeypatch.setattr(ExecutionConsumer, "close_soon", close_soon_and_tell)
    async with open_socket(path_for(execution_id, "last_seq=0"), bearer(token)) as socket:
        assert (await receive(socket))["seq"] == 1
        await asyncio.wait_for(send.reached.wait(), 5)
        await database_sync_to_async(type(user).objects.filter(pk=user.pk).update)(is_active=False)
        await asyncio.wait_for(closing.wait(), 5)
        send.released.set()
        messages, code = await receive_until_close(socket)
    assert [m.get("seq") for m in messages] == [2, None]  # the event being sent, the error
    assert messages[-1]["type"] == "error" and "deactivated" in messages[-1]["message"]
    assert code == 4403
