"""Cookie-authenticated sockets and the origins they may come from."""

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from realtime.auth import origin_allowed
from tests.realtime.helpers import STATUS_FIELDS, open_socket, path_for, receive, receive_refusal

pytestmark = pytest.mark.django_db(transaction=True)


def scope_from(origin: str | None) -> dict:
    return {"headers": [] if origin is None else [(b"origin", origin.encode())]}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://example.com", True),
        ("https://a.b.example.com", True),
        ("http://app.example.com", False),  # the scheme is part of the origin
        ("https://app.example.com:8443", False),  # so is the port
        ("https://example.com.evil.test", False),
        ("https://evilexample.com", False),
        ("https://exact.test:8443", True),
        ("https://exact.test", False),
        ("https://sub.exact.test:8443", False),
        ("http://[", False),  # unparsable
        ("null", False),
        (None, False),
    ],
)
def test_csrf_trusted_origins_with_wildcards(settings, origin, allowed):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com", "https://exact.test:8443"]

    assert origin_allowed(scope_from(origin)) is allowed


async def test_cookie_socket_from_a_wildcard_trusted_origin_is_served(
    held_execution, user, settings
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    trusted = [cookie, (b"origin", b"https://app.example.com")]
    async with open_socket(path_for(held_execution.id), trusted) as socket:
        assert set(await receive(socket)) == STATUS_FIELDS
    foreign = [cookie, (b"origin", b"https://app.example.org")]
    async with open_socket(path_for(held_execution.id), foreign) as socket:
        _, code = await receive_refusal(socket)
    assert code == 4403
