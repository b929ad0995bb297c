"""Chunks of streamed output on the socket: live in seq order with the rest of
the stream, each once, and resumed mid-stream with ``last_seq``."""

import pytest
from django.test import override_settings

import tests.executions.nodes  # noqa: F401  registers test_streamer
from tests.factories import chain, make_execution, make_workflow, node
from tests.realtime.helpers import (
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

PIECES = [f"piece {i} " for i in range(8)]
STREAMING = chain(
    node("talk", "test_streamer", pieces=PIECES, interval=0.05),
    node("after", "delay", seconds=0),
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Every piece its own chunk: the stream has many to resume in the middle of.
    pytest.mark.usefixtures("one_piece_a_chunk"),
]


@pytest.fixture
def one_piece_a_chunk():
    with override_settings(EXECUTIONS_CHUNK_INTERVAL=0):
        yield


async def streaming_execution(user):
    workflow = await record(make_workflow, owner=user, definition=STREAMING)
    return await record(make_execution, owner=user, workflow=workflow)


async def test_chunks_arrive_live_in_order_once_each_before_the_node_completes(user, token):
    execution = await streaming_execution(user)
    async with open_socket(path_for(execution.id), bearer(token)) as socket:
        messages, code = await receive_until_close(socket)

    assert code == 1000
    events = await stored_events(execution.id)
    assert_stream_matches_log(messages, events)
    chunks = [m for m in messages if m["type"] == "chunk"]
    assert "".join(m["data"] for m in chunks) == "".join(PIECES)
    assert len(chunks) >= 2, "streamed while running, not at the end in one"
    completed = next(
        m["seq"] for m in messages if m["type"] == "node" and m.get("status") == "completed"
    )
    assert all(m["seq"] < completed for m in chunks)


async def test_a_client_that_drops_mid_stream_resumes_with_the_chunks_it_missed(user, token):
    execution = await streaming_execution(user)
    first: list[dict] = []
    async with open_socket(path_for(execution.id, "last_seq=0"), bearer(token)) as socket:
        while sum(m["type"] == "chunk" for m in first) < 2:
            first.append(await receive(socket))
    resumed_from = first[-1]["seq"]
    async with open_socket(
        path_for(execution.id, f"last_seq={resumed_from}"), bearer(token)
    ) as socket:
        rest, code = await receive_until_close(socket)

    assert code == 1000
    assert rest[0]["seq"] == resumed_from + 1
    events = await stored_events(execution.id)
    assert [parsed(m) for m in first + rest] == [expected(e) for e in events]
    chunks = [m["data"] for m in first + rest if m["type"] == "chunk"]
    assert "".join(chunks) == "".join(PIECES)
