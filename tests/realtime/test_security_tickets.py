"""One-time socket tickets, and no long-lived token in a URL."""

import hashlib
from datetime import timedelta
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from executions.clock import database_now
from realtime.models import SocketTicket
from tests.clock import process_clock_off_by
from tests.conftest import bearer_client
from tests.factories import make_execution, make_token
from tests.realtime.helpers import (
    STATUS_FIELDS,
    open_socket,
    path_for,
    receive,
    receive_refusal,
)

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def issue_ticket(user) -> dict:
    response = bearer_client(user).post("/api/v1/ws-tickets")
    assert response.status_code == 201, response.content
    return response.json()


def ticket_path(execution_id, ticket: str, extra: str = "") -> str:
    return path_for(execution_id, f"ticket={quote(ticket)}{extra}")


async def assert_served(path: str, headers=()) -> dict:
    async with open_socket(path, headers) as socket:
        snapshot = await receive(socket)
    assert set(snapshot) == STATUS_FIELDS
    return snapshot


@pytest.mark.parametrize("path", ["/api/v1/ws-tickets", "/api/v1/ws-tickets/"])
def test_issuing_a_ticket_returns_it_and_its_lifetime(user, path):
    response = bearer_client(user).post(path)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"ticket", "expires_in"}
    assert body["expires_in"] == 60 == settings.REALTIME_TICKET_TTL_SECONDS
    assert len(body["ticket"]) >= 40


def test_only_a_hash_of_the_ticket_is_stored(user):
    ticket = bearer_client(user).post("/api/v1/ws-tickets").json()["ticket"]

    stored = SocketTicket.objects.get()
    assert stored.user == user
    assert stored.key_hash == hashlib.sha256(ticket.encode()).hexdigest()
    assert ticket not in {str(value) for value in vars(stored).values()}
    remaining = (stored.expires_at - timezone.now()).total_seconds()
    assert 55 < remaining <= 60


def test_issuing_a_ticket_needs_authentication(db):
    response = APIClient().post("/api/v1/ws-tickets")

    assert response.status_code == 401
    assert not SocketTicket.objects.exists()


def test_a_logged_in_session_may_issue_a_ticket(user):
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)

    assert client.post("/api/v1/ws-tickets").status_code == 201


async def test_a_ticket_opens_a_socket_without_origin_and_then_never_again(held_execution, user):
    ticket = (await issue_ticket(user))["ticket"]

    snapshot = await assert_served(ticket_path(held_execution.id, ticket))
    assert snapshot["execution_id"] == str(held_execution.id)

    async with open_socket(ticket_path(held_execution.id, ticket)) as socket:
        text, code = await receive_refusal(socket)
    assert code == 4401
    assert "POST /api/v1/ws-tickets" in text
    assert not await database_sync_to_async(SocketTicket.objects.exists)()


async def test_a_ticket_works_with_last_seq(held_execution, user):
    ticket = (await issue_ticket(user))["ticket"]
    async with open_socket(ticket_path(held_execution.id, ticket, "&last_seq=0")) as socket:
        first = await receive(socket)
    assert first["seq"] == 1


async def test_an_expired_ticket_is_refused_with_4401(held_execution, user):
    ticket = (await issue_ticket(user))["ticket"]
    await database_sync_to_async(SocketTicket.objects.update)(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    async with open_socket(ticket_path(held_execution.id, ticket)) as socket:
        text, code = await receive_refusal(socket)
    assert code == 4401
    assert "expired" in text


async def test_a_ticket_issued_by_a_server_whose_clock_is_behind_opens_a_socket(
    held_execution, user
):
    with process_clock_off_by(-3600):
        ticket = (await issue_ticket(user))["ticket"]
    await assert_served(ticket_path(held_execution.id, ticket))


async def test_an_expired_ticket_is_refused_by_a_server_whose_clock_is_behind(held_execution, user):
    ticket = (await issue_ticket(user))["ticket"]
    expired = await database_sync_to_async(database_now)() - timedelta(seconds=1)
    await database_sync_to_async(SocketTicket.objects.update)(expires_at=expired)
    with process_clock_off_by(-3600):
        async with open_socket(ticket_path(held_execution.id, ticket)) as socket:
            _, code = await receive_refusal(socket)
    assert code == 4401


async def test_a_ticket_within_its_lifetime_is_accepted(held_execution, user, settings):
    settings.REALTIME_TICKET_TTL_SECONDS = 1
    ticket = await issue_ticket(user)
    assert ticket["expires_in"] == 1
    await assert_served(ticket_path(held_execution.id, ticket["ticket"]))


async def test_a_ticket_is_only_good_for_its_own_user(user, other_user, no_dispatch):
    theirs = await database_sync_to_async(make_execution)(other_user)
    mine = await database_sync_to_async(make_execution)(user)
    ticket = (await issue_ticket(user))["ticket"]

    async with open_socket(ticket_path(theirs.id, ticket)) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4404  # authenticated as alice, who may not see bob's execution
    # Spent on that attempt: it does not open alice's own execution either.
    async with open_socket(ticket_path(mine.id, ticket)) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


async def test_a_ticket_of_a_since_deactivated_user_is_refused(held_execution, user):
    ticket = (await issue_ticket(user))["ticket"]
    user.is_active = False
    await database_sync_to_async(user.save)()
    async with open_socket(ticket_path(held_execution.id, ticket)) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


@pytest.mark.parametrize("ticket", ["", "x", "not-a-ticket" * 10])
async def test_an_unknown_ticket_does_not_fall_back_to_the_session(held_execution, user, ticket):
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    headers = [cookie, (b"origin", b"http://localhost")]
    if not ticket:  # an empty ticket is no ticket: the session is used
        await assert_served(path_for(held_execution.id, "ticket="), headers)
        return
    async with open_socket(ticket_path(held_execution.id, ticket), headers) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


@pytest.mark.parametrize("name", ["token", "access_token", "auth", "authorization", "key"])
async def test_a_long_lived_token_in_the_query_string_does_not_authenticate(
    held_execution, user, name
):
    token = await database_sync_to_async(make_token)(user)
    for value in (token, f"Bearer {token}"):
        path = path_for(held_execution.id, f"{name}={quote(value)}")
        async with open_socket(path) as socket:
            _, code = await receive_refusal(socket)
        assert code == 4401
