"""A connect slower than the watchdog's checks still sends each event once."""

import asyncio
import time

import pytest

import realtime.subscription
from executions import services
from executions.selectors import execution_visible_to
from tests.realtime.helpers import bearer, open_socket, path_for, receive_until_close, record

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("query", ["last_seq=0", ""])
async def test_watchdog_checks_during_a_slow_connect_send_nothing_twice(
    held_execution, token, settings, monkeypatch, query
):
    settings.REALTIME_RECHECK_INTERVAL = 0.05
    await record(services.execution_start, execution_id=held_execution.id)
    loop = asyncio.get_running_loop()
    initial_read_done = asyncio.Event()
    reads = []

    def slow_read(user, execution_id):
        reads.append(execution_id)
        if len(reads) == 1:
            # The read (after subscribing) spans many watchdog checks, as under load.
            time.sleep(0.5)
            loop.call_soon_threadsafe(initial_read_done.set)
        return execution_visible_to(user, execution_id)

    monkeypatch.setattr(realtime.subscription, "execution_visible_to", slow_read)
    async with open_socket(path_for(held_execution.id, query), bearer(token)) as socket:
        await initial_read_done.wait()
        await record(services.execution_complete, execution_id=held_execution.id, result=1)
        messages, code = await receive_until_close(socket)

    seqs = [m["seq"] for m in messages]
    assert reads == [held_execution.id]  # one read per connect
    assert code == 1000
    assert len(seqs) == len(set(seqs)), seqs
    assert seqs == sorted(seqs)
    assert seqs[-1] == 4 and messages[-1]["status"] == "completed"
    if query:
        assert seqs == [1, 2, 3, 4]
