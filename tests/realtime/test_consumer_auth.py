"""Who may open an execution stream, and how the others are turned away."""

import uuid

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client

from tests.factories import make_execution, make_token
from tests.realtime.helpers import (
    STATUS_FIELDS,
    bearer,
    open_socket,
    path_for,
    receive,
    receive_refusal,
)

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED_ORIGIN = b"http://app.example"  # an ALLOWED_HOSTS host, as the ws:// socket
TRUSTED_ORIGIN = b"https://trusted.example:8443"


@pytest.fixture
def origins(settings):
    settings.ALLOWED_HOSTS = ["app.example"]
    settings.CSRF_TRUSTED_ORIGINS = [TRUSTED_ORIGIN.decode()]


@pytest.fixture
def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())


async def assert_snapshot_of(path: str, headers, execution) -> None:
    async with open_socket(path, headers) as socket:
        snapshot = await receive(socket)
        assert set(snapshot) == STATUS_FIELDS
        assert snapshot["type"] == "status"
        assert snapshot["execution_id"] == str(execution.id)
        assert snapshot["status"] == "pending"


async def test_bearer_token_without_origin_header_is_served(held_execution, token):
    headers = bearer(token)
    assert not any(name == b"origin" for name, _ in headers)
    await assert_snapshot_of(path_for(held_execution.id), headers, held_execution)


async def test_bearer_token_is_served_whatever_the_origin(held_execution, token, origins):
    # A browser cannot send the header cross-site, so the origin does not matter.
    headers = [*bearer(token), (b"origin", b"https://evil.example")]
    await assert_snapshot_of(path_for(held_execution.id), headers, held_execution)


async def test_no_credentials_get_an_error_then_4401(held_execution):
    async with open_socket(path_for(held_execution.id)) as socket:
        text, code = await receive_refusal(socket)
    assert code == 4401
    assert "Bearer" in text  # says how to authenticate


async def test_no_credentials_are_refused_before_the_execution_is_looked_up():
    # An anonymous client learns nothing about which ids exist.
    async with open_socket(path_for(uuid.uuid4())) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-token", "Bearer ", "Bearer", "Token {token}", "{token}", "Basic {token}"],
)
async def test_bad_authorization_header_gets_an_error_then_4401(
    held_execution, token, authorization
):
    headers = [(b"authorization", authorization.format(token=token).encode())]
    async with open_socket(path_for(held_execution.id), headers) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


async def test_bad_authorization_header_does_not_fall_back_to_the_session(
    held_execution, session_cookie, origins
):
    headers = [
        session_cookie,
        (b"origin", ALLOWED_ORIGIN),
        (b"authorization", b"Bearer not-a-token"),
    ]
    async with open_socket(path_for(held_execution.id), headers) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


async def test_deactivated_users_token_gets_an_error_then_4401(held_execution, user, token):
    user.is_active = False
    await database_sync_to_async(user.save)()
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4401


@pytest.mark.parametrize("origin", [ALLOWED_ORIGIN, TRUSTED_ORIGIN])
async def test_session_cookie_from_an_allowed_origin_is_served(
    held_execution, session_cookie, origins, origin
):
    headers = [session_cookie, (b"origin", origin)]
    await assert_snapshot_of(path_for(held_execution.id), headers, held_execution)


@pytest.mark.parametrize(
    "origin", [b"https://evil.example", b"https://app.example.evil.example", b"null", None]
)
async def test_session_cookie_from_a_foreign_or_missing_origin_gets_an_error_then_4403(
    held_execution, session_cookie, origins, origin
):
    headers = [session_cookie] if origin is None else [session_cookie, (b"origin", origin)]
    async with open_socket(path_for(held_execution.id), headers) as socket:
        text, code = await receive_refusal(socket)
    assert code == 4403
    assert "Origin" in text


async def test_unknown_and_foreign_executions_get_the_same_error_then_4404(
    user, token, other_user, no_dispatch
):
    foreign = await database_sync_to_async(make_execution)(other_user)
    answers = []
    for execution_id in (uuid.uuid4(), foreign.id):
        async with open_socket(path_for(execution_id), bearer(token)) as socket:
            answers.append(await receive_refusal(socket))
    unknown, not_yours = answers
    assert unknown == not_yours
    assert unknown[1] == 4404


@pytest.mark.parametrize("execution_id", ["not-a-uuid", "123", f"{uuid.uuid4()}x", "%20"])
async def test_id_that_is_not_a_uuid_gets_an_error_then_4404(user, token, execution_id):
    # open_socket asserts that the handshake itself was accepted.
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4404


async def test_staff_may_watch_anyones_execution(held_execution, staff_user):
    staff_token = await database_sync_to_async(make_token)(staff_user)
    await assert_snapshot_of(path_for(held_execution.id), bearer(staff_token), held_execution)
