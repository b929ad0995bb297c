"""The client's address and scheme, from the peer and ``TRUSTED_PROXY_HOPS`` proxies in front.

Each proxy appends the address it was connected from to ``X-Forwarded-For``
(nginx: ``$proxy_add_x_forwarded_for``), so only the rightmost entries, one
per trusted proxy, were written by someone we trust; everything left of them
is whatever the client sent. With ``TRUSTED_PROXY_HOPS`` = N the client is
the Nth entry from the right. With fewer than N entries (the request did not
come through all the proxies) or an entry that is not an IP address, the
client is the peer itself: nothing a client wrote is ever used. With 0 (the
default) the headers are ignored and the peer is the client.

``ClientAddressMiddleware`` writes the result into ``scope["client"]`` once
per connection, so Django's ``REMOTE_ADDR``, the throttles and the socket
limits all see the same address.
"""

import ipaddress

from django.conf import settings

SCHEMES = {"http": {"http": "http", "https": "https"}, "websocket": {"http": "ws", "https": "wss"}}


def header_values(scope, name: bytes) -> list[str]:
    """Every comma-separated value of every ``name`` header, in the order received."""
    values = []
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            values += [v.strip() for v in value.decode("latin-1").split(",")]
    return values


def forwarded_client(scope, hops: int) -> str | None:
    """The address ``hops`` trusted proxies say the client has, or None to use the peer."""
    entries = header_values(scope, b"x-forwarded-for")
    if hops <= 0 or len(entries) < hops:
        return None
    try:
        return str(ipaddress.ip_address(entries[-hops]))
    except ValueError:
        return None


def forwarded_scheme(scope, hops: int) -> str | None:
    """The scheme the nearest trusted proxy was reached on (``X-Forwarded-Proto``), or None."""
    if hops <= 0:
        return None
    values = header_values(scope, b"x-forwarded-proto")
    # The nearest proxy sets the header (nginx: proxy_set_header replaces it).
    return SCHEMES[scope["type"]].get(values[-1].lower()) if values else None


class ClientAddressMiddleware:
    """ASGI middleware: ``scope["client"]`` and ``scope["scheme"]`` as the trusted proxies say."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in SCHEMES:
            hops = settings.TRUSTED_PROXY_HOPS
            address = forwarded_client(scope, hops)
            if address is not None:
                scope = dict(scope, client=[address, 0])
            scheme = forwarded_scheme(scope, hops)
            if scheme is not None:
                scope = dict(scope, scheme=scheme)
        return await self.app(scope, receive, send)
