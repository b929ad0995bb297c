"""The client address and scheme from TRUSTED_PROXY_HOPS, and the throttles that key on it."""

import json
import random

import pytest
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator

from project.asgi import application
from project.clientaddr import ClientAddressMiddleware
from tests.factories import make_user

PEER = ["10.9.0.1", 41000]
PASSWORD = "pass-word-123"  # what tests.factories.make_user sets


def scope_with(kind: str = "http", forwarded_for=(), proto=None) -> dict:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded_for]
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return {"type": kind, "path": "/", "headers": headers, "client": list(PEER)}


async def seen_by_the_app(scope: dict) -> dict:
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    await ClientAddressMiddleware(app)(scope, None, None)
    return seen


@pytest.mark.parametrize(
    ("hops", "forwarded_for", "client"),
    [
        (0, ["203.0.113.5"], PEER),  # no proxy trusted: the header is ignored
        (0, [], PEER),
        (1, ["203.0.113.5"], ["203.0.113.5", 0]),
        (1, ["6.6.6.6, 203.0.113.5"], ["203.0.113.5", 0]),  # the client wrote 6.6.6.6
        (1, ["6.6.6.6", "203.0.113.5"], ["203.0.113.5", 0]),  # two headers are one list
        (2, ["6.6.6.6, 203.0.113.5, 10.0.0.2"], ["203.0.113.5", 0]),
        (1, ["2001:DB8::1"], ["2001:db8::1", 0]),
        (1, [], PEER),  # fewer entries than proxies: the peer, never a client's entry
        (2, ["203.0.113.5"], PEER),
        (1, ["6.6.6.6, not-an-address"], PEER),
        (1, ["6.6.6.6, "], PEER),
    ],
)
async def test_the_client_is_the_entry_the_trusted_proxies_added(
    settings, hops, forwarded_for, client
):
    settings.TRUSTED_PROXY_HOPS = hops

    for kind in ("http", "websocket"):
        assert (await seen_by_the_app(scope_with(kind, forwarded_for)))["client"] == client


@pytest.mark.parametrize(
    ("hops", "kind", "proto", "scheme"),
    [
        (1, "http", "https", "https"),
        (1, "websocket", "https", "wss"),
        (1, "websocket", "http", "ws"),
        (1, "websocket", "gopher", None),
        (0, "websocket", "https", None),  # no proxy trusted: not even its scheme
    ],
)
async def test_the_scheme_comes_from_the_trusted_proxy(settings, hops, kind, proto, scheme):
    settings.TRUSTED_PROXY_HOPS = hops

    assert (await seen_by_the_app(scope_with(kind, proto=proto))).get("scheme") == scheme


async def post_token(username: str, password: str, forwarded_for: str | None) -> int:
    """POST /api/v1/auth/token through the project's ASGI application; the status code."""
    body = json.dumps({"username": username, "password": password}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"host", b"localhost"),
    ]
    if forwarded_for is not None:
        headers.append((b"x-forwarded-for", forwarded_for.encode()))
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/token",
        "raw_path": b"/api/v1/auth/token",
        "query_string": b"",
        "headers": headers,
        "client": list(PEER),
        "server": ["127.0.0.1", 8037],
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(5)
    await communicator.receive_output(5)
    await communicator.wait(5)
    return start["status"]


def forged() -> str:
    return ".".join(str(random.randrange(1, 255)) for _ in range(4))


@pytest.mark.django_db(transaction=True)
async def test_with_one_proxy_a_forged_leftmost_entry_changes_nothing(settings):
    settings.TRUSTED_PROXY_HOPS = 1
    settings.API_TOKEN_RATE = "3/minute"
    await make_user_async("alice")

    codes = [await post_token("alice", PASSWORD, f"{forged()}, 203.0.113.5") for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    # Another client behind the proxy, and the proxy's own address, are counted apart.
    assert await post_token("alice", PASSWORD, f"{forged()}, 203.0.113.6") == 200
    assert await post_token("alice", PASSWORD, None) == 200


@pytest.mark.django_db(transaction=True)
async def test_with_no_proxy_trusted_the_header_is_ignored(settings):
    settings.TRUSTED_PROXY_HOPS = 0
    settings.API_TOKEN_RATE = "3/minute"
    await make_user_async("alice")

    codes = [await post_token("alice", PASSWORD, forged()) for _ in range(3)]
    codes.append(await post_token("alice", PASSWORD, f"{forged()}, {forged()}"))

    assert codes == [200, 200, 200, 429]


async def make_user_async(username: str):
    return await database_sync_to_async(make_user)(username)
