"""What a client may send: frame size, message rate, silence; and how many sockets it may open."""

import asyncio
import json
from contextlib import AsyncExitStack

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from executions import services
from tests.factories import make_execution, make_token
from tests.realtime.helpers import (
    assert_open,
    bearer,
    open_socket,
    path_for,
    receive,
    receive_refusal,
    record,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_documented_defaults():
    assert settings.REALTIME_MAX_MESSAGE_BYTES == 64 * 1024
    assert settings.REALTIME_MAX_MESSAGES_PER_SECOND == 20
    assert settings.REALTIME_IDLE_TIMEOUT == 120
    assert settings.REALTIME_MAX_SOCKETS_PER_USER == 50
    assert settings.REALTIME_SEND_BUFFER_BYTES == 1024 * 1024


def ping_of(size: int) -> str:
    """A ping whose text is exactly ``size`` bytes of UTF-8."""
    # Two-byte characters, so the limit is counted in bytes, not characters.
    free = size - len(json.dumps({"type": "ping", "pad": ""}).encode())
    return json.dumps(
        {"type": "ping", "pad": "é" * (free // 2) + "x" * (free % 2)}, ensure_ascii=False
    )


async def test_a_frame_of_64_kib_is_served_and_one_byte_more_closes_with_1009(
    held_execution, token
):
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)  # the snapshot
        exactly = ping_of(64 * 1024)
        assert len(exactly.encode()) == 65536
        await socket.send_to(text_data=exactly)
        assert await receive(socket) == {"type": "pong"}

        await socket.send_to(text_data=ping_of(64 * 1024 + 1))
        text, code = await receive_refusal(socket)
    assert code == 1009
    assert "65537 bytes" in text and "REALTIME_MAX_MESSAGE_BYTES" in text


async def test_a_big_binary_frame_closes_with_1009(held_execution, token, settings):
    settings.REALTIME_MAX_MESSAGE_BYTES = 1000
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        await socket.send_to(bytes_data=b"\0" * 1000)  # at the limit: an error, still open
        assert (await receive(socket))["type"] == "error"
        await socket.send_to(bytes_data=b"\0" * 1001)
        _, code = await receive_refusal(socket)
    assert code == 1009


async def test_the_21st_message_within_a_second_closes_with_1008(held_execution, token):
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        for _ in range(21):
            await socket.send_json_to({"type": "ping"})
        for _ in range(20):
            assert await receive(socket) == {"type": "pong"}
        text, code = await receive_refusal(socket)
    assert code == 1008
    assert "more than 20 in one second" in text


async def test_bad_messages_count_against_the_rate_too(held_execution, token, settings):
    settings.REALTIME_MAX_MESSAGES_PER_SECOND = 3
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        for frame in ("{", "[]", '{"type": "x"}', "{"):
            await socket.send_to(text_data=frame)
        for _ in range(3):
            assert (await receive(socket))["type"] == "error"
        _, code = await receive_refusal(socket)
    assert code == 1008


async def test_twenty_messages_every_second_are_fine(held_execution, token, settings):
    settings.REALTIME_MAX_MESSAGES_PER_SECOND = 5
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        for _ in range(3):
            for _ in range(5):
                await socket.send_json_to({"type": "ping"})
            for _ in range(5):
                assert await receive(socket) == {"type": "pong"}
            await asyncio.sleep(1.05)  # the window the limit is about


async def test_a_socket_that_sends_nothing_is_told_and_closed_with_4410(
    held_execution, token, settings
):
    settings.REALTIME_IDLE_TIMEOUT = 0.5
    settings.REALTIME_RECHECK_INTERVAL = 0.1
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        text, code = await receive_refusal(socket)
    assert code == 4410
    assert "REALTIME_IDLE_TIMEOUT" in text and "ping" in text and "last_seq" in text


async def test_a_client_that_pings_at_a_quarter_of_the_idle_limit_stays_open(
    held_execution, token, settings
):
    # The seed's client pings every 30 s; the default idle limit is 120 s.
    settings.REALTIME_IDLE_TIMEOUT = 0.8
    settings.REALTIME_RECHECK_INTERVAL = 0.05
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        for _ in range(10):  # 2 s: two and a half idle limits
            await asyncio.sleep(0.2)
            await assert_open(socket)
        await record(services.execution_start, execution_id=held_execution.id)
        assert (await receive(socket))["type"] in {"status", "log"}


async def test_a_user_may_open_50_sockets_and_the_51st_closes_with_4429(
    held_execution, token, other_user
):
    path = path_for(held_execution.id)
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(open_socket(path, bearer(token))) for _ in range(50)
        ]
        for socket in sockets:
            await receive(socket)
        async with open_socket(path, bearer(token)) as extra:
            text, code = await receive_refusal(extra)
        assert code == 4429
        assert "at most 50 per user" in text and "REALTIME_MAX_SOCKETS_PER_USER" in text
        # Another user is not affected.
        theirs = await database_sync_to_async(make_execution)(other_user)
        other_token = await database_sync_to_async(make_token)(other_user)
        async with open_socket(path_for(theirs.id), bearer(other_token)) as socket:
            assert (await receive(socket))["type"] == "status"
        # Closing one makes room for one.
        await sockets.pop().disconnect()
        async with open_socket(path, bearer(token)) as again:
            assert (await receive(again))["type"] == "status"
        await assert_open(sockets[0])


async def test_refused_sockets_do_not_count_against_the_cap(held_execution, token, settings):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 1
    for _ in range(3):
        async with open_socket(path_for(held_execution.id, "last_seq=x"), bearer(token)) as bad:
            assert (await receive_refusal(bad))[1] == 4400
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        assert (await receive(socket))["type"] == "status"
