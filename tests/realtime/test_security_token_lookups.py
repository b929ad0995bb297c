"""A storm of handshakes with one token reads it about once, and revocation still counts at once."""

import asyncio
import threading

import pytest
from channels.auth import get_user
from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token

import realtime.auth
from tests.realtime.helpers import (
    STATUS_FIELDS,
    bearer,
    open_socket,
    path_for,
    receive,
    receive_refusal,
)
from tests.realtime.test_security_sessions import cookie_headers, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


async def handshake(execution_id, headers) -> dict:
    async with open_socket(path_for(execution_id), headers) as socket:
        return await receive(socket)


async def test_many_handshakes_at_once_with_one_token_read_it_once(
    held_execution, token, token_reads
):
    first = await asyncio.gather(*[handshake(held_execution.id, bearer(token)) for _ in range(20)])
    # And those that follow within the recheck interval reuse what was found.
    later = [await handshake(held_execution.id, bearer(token)) for _ in range(3)]
    assert all(set(message) == STATUS_FIELDS for message in first + later)
    assert token_reads == [token]


async def test_a_user_found_is_read_again_after_the_recheck_interval(
    held_execution, token, token_reads, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 0.2
    await handshake(held_execution.id, bearer(token))
    await asyncio.sleep(0.3)
    await handshake(held_execution.id, bearer(token))
    assert token_reads == [token, token]


async def test_an_unknown_token_is_read_every_time(held_execution, token_reads):
    for _ in range(2):
        async with open_socket(path_for(held_execution.id), bearer("no-such-token")) as socket:
            _, code = await receive_refusal(socket)
        assert code == 4401
    assert token_reads == ["no-such-token", "no-such-token"]


async def test_a_deleted_token_opens_no_more_sockets_at_once(held_execution, token):
    await handshake(held_execution.id, bearer(token))
    await database_sync_to_async(Token.objects.filter(key=token).delete)()
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


async def test_a_deactivated_user_opens_no_more_sockets_at_once(held_execution, user, token):
    await handshake(held_execution.id, bearer(token))
    user.is_active = False
    await database_sync_to_async(user.save)()
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


def test_the_lookups_keep_a_bounded_number_of_users(user, monkeypatch):
    monkeypatch.setattr(realtime.auth.TokenLookups, "MAX_ENTRIES", 3)
    lookups = realtime.auth.TokenLookups()
    for n in range(10):
        lookups._keep(f"key-{n}", user)
        assert len(lookups.found) <= 3
    assert "key-9" in lookups.found


@pytest.fixture
def session_reads(monkeypatch) -> list[str]:
    """The threads session users are read in."""
    threads: list[str] = []
    original = get_user.func

    def counted(scope):
        threads.append(threading.current_thread().name)
        return original(scope)

    monkeypatch.setattr(realtime.auth.get_user, "func", counted)
    return threads


async def test_a_token_socket_reads_no_session_user(held_execution, token, session_reads):
    await handshake(held_execution.id, bearer(token))
    assert session_reads == []


async def test_a_session_socket_reads_its_user_in_the_socket_read_pool(
    held_execution, user, session_reads
):
    client = await logged_in(user)
    message = await handshake(held_execution.id, cookie_headers(client))
    assert set(message) == STATUS_FIELDS
    [thread] = session_reads
    assert thread.startswith("realtime-db")
