"""Messages from the client: ping, and everything else that is answered with an error."""

import pytest

from executions import services
from tests.realtime.helpers import (
    assert_open,
    bearer,
    expected,
    open_socket,
    parsed,
    path_for,
    receive,
    record,
    stored_events,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_ping_gets_pong(held_execution, token):
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)  # the snapshot
        for _ in range(2):
            await socket.send_json_to({"type": "ping"})
            assert await receive(socket) == {"type": "pong"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "JSON"),
        ("not json", "JSON"),
        ("[1, 2]", "object"),
        ("3", "object"),
        ('"ping"', "object"),
        ("null", "object"),
        ("{}", "type"),
        ('{"kind": "ping"}', "type"),
        ('{"type": "subscribe"}', "subscribe"),
        ('{"type": "PING"}', "PING"),
        ('{"type": ["ping"]}', "type"),
    ],
)
async def test_bad_message_gets_an_error_and_the_socket_stays_open(
    held_execution, token, text, says
):
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)  # the snapshot
        await socket.send_to(text_data=text)
        error = await receive(socket)
        assert set(error) == {"type", "message"}
        assert error["type"] == "error"
        assert says in error["message"]
        await assert_open(socket)


async def test_binary_frame_gets_an_error_and_the_socket_stays_open(held_execution, token):
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)  # the snapshot
        await socket.send_to(bytes_data=b'{"type": "ping"}')
        error = await receive(socket)
        assert error["type"] == "error"
        assert "JSON text" in error["message"]
        await assert_open(socket)


async def test_stream_goes_on_after_a_bad_message(held_execution, token):
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        await receive(socket)  # the snapshot
        await socket.send_to(text_data="{")
        assert (await receive(socket))["type"] == "error"
        await record(services.execution_start, execution_id=execution_id)
        started = await receive(socket)

    events = await stored_events(execution_id)
    assert parsed(started) == expected(events[1])
