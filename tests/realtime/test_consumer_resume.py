"""Resuming with ``?last_seq=N``: the stored events after N, then live ones."""

import pytest

from executions import services
from tests.realtime.helpers import (
    bearer,
    expected,
    open_socket,
    parsed,
    path_for,
    receive,
    receive_close,
    receive_refusal,
    receive_until_close,
    record,
    stored_events,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def record_running_log(execution_id) -> None:
    """Seqs 2..6 after creation: start (its "Execution started" log, then running),
    progress, a log line, progress."""
    await record(services.execution_start, execution_id=execution_id)
    await record(services.execution_progress, execution_id=execution_id, message="a", progress=10)
    await record(
        services.execution_log, execution_id=execution_id, node_id="a", level="info", message="l"
    )
    await record(services.execution_progress, execution_id=execution_id, message="b", progress=40)


@pytest.mark.parametrize("last_seq", [0, 2, 6])
async def test_resume_sends_the_stored_events_after_last_seq_then_live_ones(
    held_execution, token, last_seq
):
    execution_id = held_execution.id
    await record_running_log(execution_id)
    path = path_for(execution_id, f"last_seq={last_seq}")
    async with open_socket(path, bearer(token)) as socket:
        replayed = [await receive(socket) for _ in range(6 - last_seq)]
        # Then live: the next message is the next change, not a snapshot or a repeat.
        await record(services.execution_complete, execution_id=execution_id, result="done")
        live, code = await receive_until_close(socket)

    events = await stored_events(execution_id)
    types = ["status", "log", "status", "status", "log", "status", "status"]
    assert [event.type for event in events] == types
    assert [parsed(m) for m in replayed] == [expected(e) for e in events[last_seq:6]]
    assert [parsed(m) for m in live] == [expected(events[6])]
    assert live[0]["status"] == "completed"
    assert code == 1000


async def test_resume_of_a_finished_execution_sends_the_rest_then_close_1000(held_execution, token):
    execution_id = held_execution.id
    await record_running_log(execution_id)
    await record(services.execution_fail, execution_id=execution_id, error="gone")
    # 4 is the first progress; the log line, the second progress and the failure remain.
    async with open_socket(path_for(execution_id, "last_seq=4"), bearer(token)) as socket:
        messages, code = await receive_until_close(socket)

    events = await stored_events(execution_id)
    assert [parsed(m) for m in messages] == [expected(e) for e in events[4:]]
    assert [(m["seq"], m["type"]) for m in messages] == [(5, "log"), (6, "status"), (7, "status")]
    assert messages[-1]["status"] == "failed"
    assert code == 1000


async def test_resume_at_the_end_of_a_finished_execution_closes_1000_without_a_message(
    held_execution, token
):
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    finished = await record(services.execution_complete, execution_id=execution_id, result=None)
    assert finished.last_seq == 4  # pending, "Execution started" log, running, completed
    async with open_socket(path_for(execution_id, "last_seq=4"), bearer(token)) as socket:
        assert await receive_close(socket) == 1000


@pytest.mark.parametrize(
    "query",
    [
        "last_seq=-1",
        "last_seq=abc",
        "last_seq=1.5",
        "last_seq=",
        "last_seq",
        "last_seq=%201",
        "last_seq=1e3",
        "last_seq=%EF%BC%91",  # a full-width digit one: str.isdigit() says yes
    ],
)
async def test_malformed_last_seq_gets_an_error_then_4400(held_execution, token, query):
    async with open_socket(path_for(held_execution.id, query), bearer(token)) as socket:
        text, code = await receive_refusal(socket)
    assert code == 4400
    assert "last_seq" in text


@pytest.mark.parametrize("finished", [False, True])
async def test_last_seq_ahead_of_the_log_gets_an_error_then_4400(held_execution, token, finished):
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    if finished:
        await record(services.execution_complete, execution_id=execution_id, result=None)
    head = len(await stored_events(execution_id))
    path = path_for(execution_id, f"last_seq={head + 1}")
    async with open_socket(path, bearer(token)) as socket:
        text, code = await receive_refusal(socket)
    assert code == 4400
    assert str(head) in text  # says where the log ends
