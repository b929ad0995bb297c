"""A socket opened with a session cookie closes with 4403 when that session ends."""

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from importlib import import_module

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import update_session_auth_hash
from django.contrib.sessions.models import Session
from django.http import HttpRequest
from django.test import Client
from django.utils import timezone

import realtime.watchdog
from realtime.selectors import socket_sessions
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

SESSION_ENDED = "session ended"


@pytest.fixture(autouse=True)
def quick_checks(settings):
    settings.REALTIME_RECHECK_INTERVAL = 0.05


class WatchdogReads:
    """One of the watchdog's reads: the ids it was asked for, and a way to await the next."""

    def __init__(self, monkeypatch, name: str):
        self.loop = asyncio.get_running_loop()
        self.reads: list[set] = []
        self.done = asyncio.Event()
        read = getattr(realtime.watchdog, name)

        def read_and_tell(ids):
            self.reads.append(set(ids))
            result = read(ids)
            self.loop.call_soon_threadsafe(self.done.set)
            return result

        monkeypatch.setattr(realtime.watchdog, name, read_and_tell)

    async def next(self, count: int = 1) -> None:
        for _ in range(count):
            self.done.clear()
            await asyncio.wait_for(self.done.wait(), timeout=5)


@pytest.fixture
async def session_checks(monkeypatch):
    return WatchdogReads(monkeypatch, "socket_sessions")


@pytest.fixture
async def access_checks(monkeypatch):
    return WatchdogReads(monkeypatch, "socket_users_access")


async def logged_in(user) -> Client:
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    return client


def cookie_headers(client: Client) -> list[tuple[bytes, bytes]]:
    return [
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://localhost"),
    ]


@database_sync_to_async
def change_password(user, password: str = "another-pass-word-456") -> None:
    user.set_password(password)
    user.save()


async def test_logging_out_closes_the_sessions_socket_with_4403_and_spares_other_sessions(
    held_execution, user, session_checks
):
    here, elsewhere = await logged_in(user), await logged_in(user)
    path = path_for(held_execution.id)
    async with (
        open_socket(path, cookie_headers(here)) as socket,
        open_socket(path, cookie_headers(elsewhere)) as other,
    ):
        await receive(socket)
        await receive(other)
        await session_checks.next(2)
        await assert_open(socket)
        await database_sync_to_async(here.logout)()
        text, code = await receive_refusal(socket)
        await session_checks.next(2)
        await assert_open(other)
    assert code == 4403
    assert SESSION_ENDED in text and "log in again" in text


async def test_a_password_change_closes_the_users_session_sockets_with_4403(
    held_execution, user, session_checks
):
    client = await logged_in(user)
    async with open_socket(path_for(held_execution.id), cookie_headers(client)) as socket:
        await receive(socket)
        await session_checks.next(2)
        await assert_open(socket)
        await change_password(user)
        text, code = await receive_refusal(socket)
    assert code == 4403
    assert SESSION_ENDED in text


async def test_a_password_change_that_keeps_the_browser_logged_in_still_closes_the_socket(
    held_execution, user, session_checks
):
    """Django gives that browser a new session; the socket's one is gone."""
    client = await logged_in(user)

    @database_sync_to_async
    def change_keeping_login() -> None:
        request = HttpRequest()
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(
            client.cookies["sessionid"].value
        )
        request.user = user
        user.set_password("another-pass-word-456")
        user.save()
        update_session_auth_hash(request, user)
        request.session.save()

    async with open_socket(path_for(held_execution.id), cookie_headers(client)) as socket:
        await receive(socket)
        await change_keeping_login()
        _, code = await receive_refusal(socket)
    assert code == 4403


async def test_an_expired_session_closes_its_socket_with_4403(held_execution, user):
    client = await logged_in(user)
    key = client.cookies["sessionid"].value
    async with open_socket(path_for(held_execution.id), cookie_headers(client)) as socket:
        await receive(socket)
        expired = timezone.now() - timedelta(seconds=1)
        await database_sync_to_async(Session.objects.filter(pk=key).update)(expire_date=expired)
        text, code = await receive_refusal(socket)
    assert code == 4403
    assert SESSION_ENDED in text


async def test_token_sockets_do_not_depend_on_the_password(
    held_execution, user, token, access_checks
):
    client = await logged_in(user)
    async with (
        open_socket(path_for(held_execution.id), bearer(token)) as by_token,
        open_socket(path_for(held_execution.id), cookie_headers(client)) as by_session,
    ):
        await receive(by_token)
        await receive(by_session)
        await change_password(user)
        _, code = await receive_refusal(by_session)
        await access_checks.next(2)
        await assert_open(by_token)
    assert code == 4403


async def test_one_session_read_per_check_whatever_the_number_of_session_sockets(
    held_execution, user, other_user, session_checks
):
    clients = [await logged_in(user), await logged_in(user)]
    path = path_for(held_execution.id)
    async with AsyncExitStack() as stack:
        for n in range(6):
            socket = await stack.enter_async_context(
                open_socket(path, cookie_headers(clients[n % 2]))
            )
            await receive(socket)
        # A token socket adds nothing to read.
        token = await database_sync_to_async(make_token)(user)
        socket = await stack.enter_async_context(open_socket(path, bearer(token)))
        await receive(socket)
        await session_checks.next()
        session_checks.reads.clear()
        await session_checks.next(3)
    keys = {client.cookies["sessionid"].value for client in clients}
    assert session_checks.reads == [keys] * 3


def test_the_sessions_are_read_in_one_query(user, django_assert_num_queries):
    clients = [Client() for _ in range(3)]
    for client in clients:
        client.force_login(user)
    keys = [client.cookies["sessionid"].value for client in clients]
    clients[0].logout()
    with django_assert_num_queries(1):
        sessions = socket_sessions([*keys, "no-such-session"])
    assert set(sessions) == set(keys[1:])
    assert {login.user_id for login in sessions.values()} == {str(user.pk)}
