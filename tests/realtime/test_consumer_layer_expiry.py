"""The in-memory layer's expiry never cuts a connected socket off its execution's events."""

import asyncio
import time

import pytest
from channels.layers import channel_layers, get_channel_layer

from executions import services
from realtime.subscription import ExecutionSubscription
from tests.realtime.helpers import (
    assert_stream_matches_log,
    bearer,
    group_members,
    open_socket,
    path_for,
    receive,
    receive_until_close,
    record,
    stored_events,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def short_expiry(settings):
    """Messages expire after 1 s, memberships (in Channels' own layer) after 1 s."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.LocalChannelLayer",
            "CONFIG": {"capacity": 1000, "expiry": 1, "group_expiry": 1},
        }
    }
    settings.REALTIME_RECHECK_INTERVAL = 600  # no help from the watchdog
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def ten_seconds_later(monkeypatch) -> None:
    """The wall clock (message and membership times) jumps ahead; expiry may run at once."""
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 10)
    get_channel_layer()._expired_at = 0.0


async def test_a_socket_open_longer_than_the_group_expiry_still_gets_live_events(
    held_execution, token, monkeypatch
):
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        ten_seconds_later(monkeypatch)
        await record(services.execution_start, execution_id=execution_id)
        await record(services.execution_complete, execution_id=execution_id, result=None)
        messages, code = await receive_until_close(socket)

    assert code == 1000
    assert [m["seq"] for m in messages] == [2, 3, 4]
    assert_stream_matches_log([snapshot, *messages], await stored_events(execution_id))


async def test_a_socket_that_reads_slowly_keeps_its_membership(held_execution, token, monkeypatch):
    reached, released = asyncio.Event(), asyncio.Event()
    forward = ExecutionSubscription.forward

    async def slow_forward(consumer, message):
        if message["seq"] == 2:
            reached.set()
            await released.wait()
        await forward(consumer, message)

    monkeypatch.setattr(ExecutionSubscription, "forward", slow_forward)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        snapshot = await receive(socket)
        # The start: 2 is being sent (slowly) while 3 waits in the layer...
        await record(services.execution_start, execution_id=execution_id)
        await asyncio.wait_for(reached.wait(), 5)
        # ...until it expired; the next send to the group drops it.
        ten_seconds_later(monkeypatch)
        await record(services.execution_progress, execution_id=execution_id, message="later")
        released.set()
        sent = [await receive(socket) for _ in range(3)]
        assert len(group_members(execution_id)) == 1
        await record(services.execution_complete, execution_id=execution_id, result=None)
        rest, code = await receive_until_close(socket)

    messages = [*sent, *rest]
    assert code == 1000
    assert [m["seq"] for m in messages] == [2, 3, 4, 5]  # 3 from the log
    assert_stream_matches_log([snapshot, *messages], await stored_events(execution_id))
