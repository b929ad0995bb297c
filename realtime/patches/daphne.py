"""daphne's ``Server``, as this project is served by it.

``install`` replaces ``Server.handle_reply`` (bounded send buffers, the RFC
close codes autobahn refuses, longer closes, spread first pings),
``Server.timeout_checker`` (in slices), ``Server.create_application`` (a
lighter input queue) and, for ``LOG_FORMAT=json``, the access log's writer.
docs/patches.md says what each replaces, why, and how to check it on an
upgrade.
"""

import asyncio
import logging
import random
import time
from collections import deque
from functools import partial

from django.conf import settings

from realtime.patches import send_buffers
from realtime.patches.versions import Supported, require

# Server.create_application, handle_reply and timeout_checker are copied or
# wrapped; WebSocketProtocol's state and sendCloseFrame are autobahn's.
SUPPORTED: Supported = {"daphne": ("4.2.3",), "autobahn": ("26.11.1",)}

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("daphne.access")

# Sent by the application (realtime.limits, realtime.consumers); autobahn's
# sendClose refuses them.
RFC_CLOSE_CODES = {1008, 1009, 1011, 1013}
# daphne checks every connection's timeouts and pings every 2 s, all at once;
# here a slice of them at a time, so that each is still checked every 2 s.
TIMEOUT_CHECK_ROUND_SECONDS = 2.0
TIMEOUT_CHECK_SLICES = 20


def spread_first_ping(protocol) -> None:
    """Let the socket's first protocol ping come after a random part of the interval."""
    protocol.last_ping = time.time() - random.uniform(0, protocol.server.ping_interval)


def check_timeouts_in_slices(server) -> None:
    """daphne's ``Server.timeout_checker``, a slice of the connections at a time.

    Each round (``TIMEOUT_CHECK_ROUND_SECONDS``) goes over the connections
    open when it began, ``TIMEOUT_CHECK_SLICES`` slices of them, one slice per
    call; connections that closed meanwhile are passed over.
    """
    from twisted.internet import reactor

    # Scheduled first: a check that raises must not end the checks of all.
    reactor.callLater(TIMEOUT_CHECK_ROUND_SECONDS / TIMEOUT_CHECK_SLICES, server.timeout_checker)
    round_ = getattr(server, "timeout_round", None)
    if not round_:
        round_ = server.timeout_round = list(server.connections)
        server.timeout_slice = -(-len(round_) // TIMEOUT_CHECK_SLICES)
    for _ in range(min(server.timeout_slice, len(round_))):
        protocol = round_.pop()
        if protocol in server.connections:
            try:
                protocol.check_timeouts()
            except Exception:
                logger.exception("Checking the timeouts of %r failed", protocol)


class ApplicationInbox:
    """What daphne hands one application (``put_nowait``), for it to ``receive`` (``get``).

    ``asyncio.Queue`` without what daphne never uses (a bound, ``join``); its
    deque exists only while messages wait. Gets are served in the order they
    began, like the queue's.
    """

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: deque | None = None
        self._getters: deque[asyncio.Future] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._wake_next()

    async def get(self):
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = deque()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                if self._getters is not None and waiter in self._getters:
                    self._getters.remove(waiter)
                if waiter.done() and not waiter.cancelled():
                    self._wake_next()  # woken, then cancelled: pass the item on
                raise
            finally:
                if not self._getters:
                    self._getters = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        else:
            self._wake_next()
        return item

    def _wake_next(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def create_application(self, protocol, scope):
    """daphne's ``Server.create_application`` with an ``ApplicationInbox`` for its queue."""
    assert "application_instance" not in self.connections[protocol]
    input_queue = ApplicationInbox()
    scope.setdefault("asgi", {"version": "3.0"})
    application_instance = self.application(
        scope=scope,
        receive=input_queue.get,
        send=partial(self.handle_reply, protocol),
    )
    if protocol not in self.connections:
        return None
    self.connections[protocol]["application_instance"] = asyncio.ensure_future(
        application_instance,
        loop=asyncio.get_event_loop(),
    )
    return input_queue


def access_log_entry(self, host, date, request, status=None, length=None, **kwargs) -> None:
    """daphne's access log line as a log record (``LOG_FORMAT=json``)."""
    access_logger.info('%s "%s" %s %s', host, request, status or "-", length or "-")


async def socket_reply_passes(protocol, message: dict) -> bool:
    """Act on an application's message to its socket before daphne does; False
    when daphne must not see it (dropped, or sent here)."""
    kind = message.get("type")
    if kind == "websocket.send":
        if protocol.state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED):
            return False  # closing: the application hears of it from websocket.disconnect
        if protocol.state == protocol.STATE_OPEN:
            frame_bytes = send_buffers.frame_bytes_at_most(message)
            return await send_buffers.client_keeps_up(protocol, frame_bytes)
    elif kind == "websocket.close" and message.get("code") in RFC_CLOSE_CODES:
        if protocol.state == protocol.STATE_OPEN:
            protocol.sendCloseFrame(code=message["code"])
        return False
    elif kind == "websocket.close":
        protocol.closeHandshakeTimeout = settings.REALTIME_CLOSE_TIMEOUT
    elif kind == "websocket.accept":
        spread_first_ping(protocol)
    return True


def bounded_handle_reply(original):
    """daphne's ``Server.handle_reply`` (``original``) behind the checks above."""
    from daphne.ws_protocol import WebSocketProtocol

    async def handle_reply(self, protocol, message):
        if message.get("stream_bounded") and message.get("type") == "http.response.body":
            body_bytes = len(message.get("body", b""))
            if not await send_buffers.stream_reader_keeps_up(protocol, body_bytes):
                return None
        elif isinstance(protocol, WebSocketProtocol) and not await socket_reply_passes(
            protocol, message
        ):
            return None
        return await original(self, protocol, message)

    handle_reply.bounds_send_buffers = True
    return handle_reply


def installed() -> bool:
    """Whether daphne's ``Server`` in this process has these hooks."""
    from daphne.server import Server

    return getattr(Server.handle_reply, "bounds_send_buffers", False)


def install() -> None:
    """Put the hooks on daphne's ``Server`` (once; checks the versions first)."""
    from daphne.access import AccessLogGenerator
    from daphne.server import Server

    require(__name__, SUPPORTED)
    if installed():
        return
    Server.timeout_checker = check_timeouts_in_slices
    if settings.LOG_FORMAT == "json":
        # daphne writes its access log to a stream of its own, as text.
        AccessLogGenerator.write_entry = access_log_entry
    Server.create_application = create_application
    Server.handle_reply = bounded_handle_reply(Server.handle_reply)
