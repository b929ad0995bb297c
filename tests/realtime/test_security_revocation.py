"""Access is checked again while a socket is open: revoked users and tokens are closed with 4403."""

import asyncio
import time
from contextlib import AsyncExitStack
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from rest_framework.authtoken.models import Token

import realtime.watchdog
from tests.conftest import bearer_client
from tests.factories import make_token
from tests.realtime.helpers import (
    assert_open,
    bearer,
    open_socket,
    path_for,
    receive,
    receive_refusal,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick_checks(settings):
    settings.REALTIME_RECHECK_INTERVAL = 0.1


@database_sync_to_async
def update_user(user, **fields) -> None:
    for name, value in fields.items():
        setattr(user, name, value)
    user.save()


async def test_deactivating_the_user_closes_their_token_socket_with_4403_within_3_s(
    held_execution, user, token, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 1.0  # the default
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        started = time.monotonic()
        await update_user(user, is_active=False)
        text, code = await receive_refusal(socket)
    assert code == 4403
    assert "deactivated" in text
    assert time.monotonic() - started < 3


async def test_deleting_the_token_closes_its_sockets_with_4403(held_execution, token):
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        await database_sync_to_async(Token.objects.filter(key=token).delete)()
        text, code = await receive_refusal(socket)
    assert code == 4403
    assert "revoked" in text and "POST /api/v1/auth/token" in text


async def test_replacing_the_token_closes_sockets_opened_with_the_old_one(
    held_execution, user, token
):
    async with open_socket(path_for(held_execution.id), bearer(token)) as old:
        await receive(old)

        @database_sync_to_async
        def rotate() -> str:
            Token.objects.filter(user=user).delete()
            return make_token(user)

        new_token = await rotate()
        async with open_socket(path_for(held_execution.id), bearer(new_token)) as new:
            await receive(new)
            _, code = await receive_refusal(old)
            assert code == 4403
            await asyncio.sleep(0.3)  # three more checks
            await assert_open(new)


async def test_a_ticket_socket_closes_when_its_user_is_deactivated(held_execution, user):
    ticket = await database_sync_to_async(
        lambda: bearer_client(user).post("/api/v1/ws-tickets").json()["ticket"]
    )()
    async with open_socket(path_for(held_execution.id, f"ticket={quote(ticket)}")) as socket:
        await receive(socket)
        # Deleting the API token does not matter to a ticket socket...
        await database_sync_to_async(Token.objects.filter(user=user).delete)()
        await asyncio.sleep(0.3)
        await assert_open(socket)
        # ...deactivating the user does.
        await update_user(user, is_active=False)
        _, code = await receive_refusal(socket)
    assert code == 4403


async def test_a_session_socket_closes_when_its_user_is_deactivated(held_execution, user):
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    headers = [
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://localhost"),
    ]
    async with open_socket(path_for(held_execution.id), headers) as socket:
        await receive(socket)
        await update_user(user, is_active=False)
        _, code = await receive_refusal(socket)
    assert code == 4403


async def test_staff_losing_staff_status_stop_watching_other_users_executions(
    held_execution, staff_user
):
    staff_token = await database_sync_to_async(make_token)(staff_user)
    async with open_socket(path_for(held_execution.id), bearer(staff_token)) as socket:
        await receive(socket)
        await asyncio.sleep(0.3)
        await assert_open(socket)
        await update_user(staff_user, is_staff=False)
        text, code = await receive_refusal(socket)
    assert code == 4403
    assert "no longer see" in text


async def test_one_access_query_per_check_whatever_the_number_of_sockets(
    held_execution, user, token, monkeypatch
):
    loop = asyncio.get_running_loop()
    checks: list[set] = []
    checked = asyncio.Event()
    read = realtime.watchdog.socket_users_access

    def counting(user_ids):
        checks.append(set(user_ids))
        loop.call_soon_threadsafe(checked.set)
        return read(user_ids)

    monkeypatch.setattr(realtime.watchdog, "socket_users_access", counting)
    async with AsyncExitStack() as stack:
        for _ in range(10):
            socket = await stack.enter_async_context(
                open_socket(path_for(held_execution.id), bearer(token))
            )
            await receive(socket)
        checks.clear()
        for _ in range(3):
            checked.clear()
            await asyncio.wait_for(checked.wait(), 5)
    assert len(checks) == 3
    assert all(ids == {user.pk} for ids in checks)
