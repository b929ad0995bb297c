"""Cookie-authenticated sockets and the origins they may come from."""

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from realtime.auth import origin_allowed
from tests.realtime.helpers import STATUS_FIELDS, open_socket, path_for, receive, receive_refusal

pytestmark = pytest.mark.django_db(transaction=True)


def scope_from(origin: str | None, host: str | None = None, scheme: str | None = None) -> dict:
    headers = [] if origin is None else [(b"origin", origin.encode())]
    if host is not None:
        headers.append((b"host", host.encode()))
    return {"headers": headers} if scheme is None else {"headers": headers, "scheme": scheme}


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


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "allowed"),
    [
        # The page's own site: the socket's scheme, Host and port, exactly.
        ("https://workflows.example.com", "workflows.example.com", "wss", True),
        ("http://workflows.example.com", "workflows.example.com", "wss", False),  # scheme
        ("https://workflows.example.com", "workflows.example.com", "ws", False),
        ("https://workflows.example.com:8443", "workflows.example.com", "wss", False),  # port
        ("https://workflows.example.com", "workflows.example.com:8443", "wss", False),
        ("https://workflows.example.com:8443", "workflows.example.com:8443", "wss", True),
        ("https://workflows.example.com:443", "workflows.example.com", "wss", True),
        ("http://localhost:8037", "localhost:8037", "ws", True),
        ("http://localhost:8000", "localhost:8037", "ws", False),
        ("http://[::1]:8037", "[::1]:8037", "ws", True),
        # Another host in ALLOWED_HOSTS, on the socket's scheme and port.
        ("https://localhost", "workflows.example.com", "wss", True),
        ("http://localhost", "workflows.example.com", "wss", False),
        # A host that is not served at all.
        ("https://evil.test", "workflows.example.com", "wss", False),
        ("https://workflows.example.com", "evil.test", "wss", False),
        ("https://workflows.example.com", None, "wss", True),  # no Host: ALLOWED_HOSTS only
    ],
)
def test_the_sockets_own_site_is_allowed_with_its_exact_scheme_and_port(
    settings, origin, host, scheme, allowed
):
    settings.ALLOWED_HOSTS = ["workflows.example.com", "localhost", "[::1]"]
    settings.CSRF_TRUSTED_ORIGINS = []

    assert origin_allowed(scope_from(origin, host, scheme)) is allowed


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("https://evil.test", "workflows.example.com", False),
        ("https://evil.test", None, False),
        ("https://workflows.example.com", "workflows.example.com", True),  # its own site
        ("https://evil.test", "evil.test", True),  # the page was served from that very Host
    ],
)
def test_a_star_in_allowed_hosts_trusts_no_other_site(settings, origin, host, allowed):
    settings.ALLOWED_HOSTS = ["*"]
    settings.CSRF_TRUSTED_ORIGINS = []

    assert origin_allowed(scope_from(origin, host, "wss")) is allowed


async def test_a_cookie_socket_from_a_foreign_site_is_refused_under_a_star(
    held_execution, user, settings
):
    settings.ALLOWED_HOSTS = ["*"]
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    host = (b"host", b"workflows.example.com:8037")
    own = [cookie, host, (b"origin", b"http://workflows.example.com:8037")]
    async with open_socket(path_for(held_execution.id), own) as socket:
        assert set(await receive(socket)) == STATUS_FIELDS
    for origin in (b"http://evil.test:8037", b"https://workflows.example.com:8037"):
        async with open_socket(
            path_for(held_execution.id), [cookie, host, (b"origin", origin)]
        ) as socket:
            _, code = await receive_refusal(socket)
        assert code == 4403
