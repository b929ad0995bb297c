"""A bound on the socket handshakes one client address starts, before any database read.

Authenticating a socket reads the database (its session, token or ticket),
so a client that opens sockets in a loop would otherwise cost a read each.
``HandshakeRateLimit`` sits outside the authentication middleware and counts
handshakes per client address (``scope["client"]``, see
``project.clientaddr``) in fixed windows, in this process's memory: like the
per-user socket cap, the bound holds per server process. A refused handshake
is accepted, told why in an ``error`` message and closed with 4429.
"""

import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from realtime import events, metrics
from realtime.languages import socket_language

CLOSE_TOO_MANY_HANDSHAKES = 4429
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PERIOD_NAMES = {
    "s": gettext_lazy("second"),
    "m": gettext_lazy("minute"),
    "h": gettext_lazy("hour"),
    "d": gettext_lazy("day"),
}


def handshake_rate() -> tuple[int, str] | None:
    """``REALTIME_HANDSHAKE_RATE`` as (count, period letter); None when it is off."""
    rate = str(settings.REALTIME_HANDSHAKE_RATE or "").strip()
    if rate in ("", "0"):
        return None
    count, _, period = str(rate).partition("/")
    try:
        number = int(count)
    except ValueError:
        number = -1
    if number < 0 or period[:1] not in PERIODS:
        raise ImproperlyConfigured(
            f"REALTIME_HANDSHAKE_RATE is {rate!r}: use 'N/second', 'N/minute', 'N/hour' "
            "or 'N/day', or leave it empty for no limit."
        )
    return (number, period[0]) if number else None


class HandshakeCounter:
    """Handshakes per address in the current window; the previous windows are forgotten."""

    def __init__(self) -> None:
        self._window: int | None = None
        self._counts: dict[str, int] = {}

    def admit(self, address: str, *, limit: int, period: float, now: float) -> float | None:
        """Count one handshake from ``address``; the seconds to wait if it is over ``limit``."""
        window = int(now // period)
        if window != self._window:
            self._window, self._counts = window, {}
        count = self._counts.get(address, 0) + 1
        if count > limit:
            return (window + 1) * period - now
        self._counts[address] = count
        return None

    def clear(self) -> None:
        self._window, self._counts = None, {}


def client_address(scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class HandshakeRateLimit:
    """ASGI middleware: at most ``REALTIME_HANDSHAKE_RATE`` socket handshakes per client address."""

    def __init__(self, app):
        self.app = app
        self.counter = HandshakeCounter()

    async def __call__(self, scope, receive, send):
        rate = handshake_rate() if scope["type"] == "websocket" else None
        if rate is not None:
            limit, period = rate
            wait = self.counter.admit(
                client_address(scope), limit=limit, period=PERIODS[period], now=time.monotonic()
            )
            if wait is not None:
                metrics.handshake_rate_limited(metrics.transport_of(scope))
                # Outside the consumers' SocketLanguage: in the handshake's language here.
                with translation.override(socket_language(scope)):
                    text = _(
                        "Too many socket handshakes from this address: at most %(limit)d per "
                        "%(period)s (REALTIME_HANDSHAKE_RATE). Reconnect in %(wait)d s, "
                        "with backoff."
                    ) % {
                        "limit": limit,
                        "period": PERIOD_NAMES[period],
                        "wait": max(1, round(wait)),
                    }
                return await refuse(receive, send, text)
        return await self.app(scope, receive, send)


async def refuse(receive, send, text: str) -> None:
    """Accept the handshake, say why in an ``error``, close with 4429, wait for the disconnect."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": events.encode(events.error_message(text))})
    await send({"type": "websocket.close", "code": CLOSE_TOO_MANY_HANDSHAKES})
    while (await receive())["type"] != "websocket.disconnect":
        pass
