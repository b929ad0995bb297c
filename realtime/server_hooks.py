"""Small hooks on daphne, installed when it serves the project.

Close codes 1008, 1009, 1011 and 1013: autobahn (under daphne) refuses an
application's close code unless it is 1000 or 3000-4999, though RFC 6455 and
its registry let an endpoint send 1008 (policy violation), 1009 (message too
big), 1011 (internal error) and 1013 (try again later). The hook sends those
close frames itself.

Bounded send buffers, closing a client that stopped reading with 4408. Why a
hook on daphne: an application's ``send`` never waits for the client.
daphne hands each frame to autobahn, which writes it to the Twisted
transport, which keeps in memory whatever the kernel's send buffer cannot
take (and the kernel grows that buffer up to ``net.ipv4.tcp_wmem``,
megabytes). A client that stops reading (a stuck tab, a dead network)
therefore makes the server keep every later event for it, without limit. The
consumer cannot see the transport, so the check lives where daphne passes an
application's messages to the protocol (``Server.handle_reply``):

* Before a frame it measures the bytes the client has not taken yet. Up
  to ``REALTIME_SEND_BUFFER_BYTES`` the frame goes out at once. (It measures
  only when what was last measured, plus what was written since, could be
  past the limit: a client that keeps up costs no system call per frame.)
* Past it, that socket's ``send`` waits (its own task only: nobody else is
  slowed down) until the client has taken enough, which paces a long
  catch-up (``?last_seq=``) to the client's speed.
* A client that takes nothing for ``REALTIME_SEND_TIMEOUT`` seconds while
  its buffer is full has stopped reading: it gets an ``error`` message and a
  close with 4408, and autobahn drops the connection if the close is not
  answered within ``REALTIME_CLOSE_TIMEOUT``, which frees the buffer (what
  waits meanwhile is bounded by the limit). A client that was only slow reads
  what was buffered, the error and the 4408, and reconnects with
  ``?last_seq=`` of the last event it got; with autobahn's own 1 s, a client
  that needed longer to read the megabytes its kernel buffers held saw the
  connection dropped (1006) instead.

An application's own close (``websocket.close``: the end of a stream, a
refusal) waits ``REALTIME_CLOSE_TIMEOUT`` for the client's answer instead of
autobahn's 1 s. The close frame queues behind whatever the client has not
read yet, and when the wait runs out autobahn aborts the connection, which
throws away what is still buffered: a client busy reading the last second of
a burst would lose the end of its stream (and see no close frame). The
1008/1009 closes for hostile clients keep the 1 s.

Protocol pings spread out: daphne pings a socket that has sent nothing for
``--ping-interval`` seconds, counted from when it connected, and checks all
sockets at once every 2 s. Sockets that connected together (a reconnect
storm after a deploy, a page of subscribers) would get their pings in the
same check, every interval for as long as they stay open: a thousand frames
in one turn of the event loop, which holds back every event behind them.
Each socket's first ping comes after a random part of the interval instead,
so the pings, and the pongs, spread evenly over it. The check itself is
spread too: daphne walks every connection in one turn of the event loop
every 2 s (its timeouts, and the pings due), which at a thousand sockets
held every event back by about 10 ms each time; here a twentieth of the
connections is checked every 0.1 s, so each is still checked every 2 s.

So what waits for one socket stays under the limit plus one message (and
the events its consumer's channel queue collects while it waits, at most the
layer's capacity). Frames for a socket that is already closing are dropped:
autobahn would raise, killing the application before it hears of the
disconnect and leaving its channel in its groups.

A lighter queue for each application's input: daphne gives every
connection an ``asyncio.Queue`` for the messages it hands the application
(connect, each frame, disconnect), which allocates four deques (its items,
getters, putters, and its ``join`` event's waiters), 3 KiB for a socket that
receives a frame a minute. ``ApplicationInbox`` keeps one waiter and makes
its deque only while messages wait.

Plain debug-log arguments: for every frame it sends, autobahn formats the
arguments of a debug log line (``hltype``, ``hlval``: the sending method's
qualified name and two values, each styled with ANSI colours by click),
even when debug logging is off and the line is dropped; it was a sixth of
the time spent sending a frame. Here those two return their argument, which
the log line, when it is written, shows uncoloured. Likewise at every
connection autobahn pretty-prints its settings for a debug line (``pformat``,
5% of a server's interpreter time while thousands of sockets connect): here
that text is made only when the line is written (``Pretty``).

The measure is the kernel's send queue (``SIOCOUTQ``, Linux) plus Twisted's
own write buffers (``dataBuffer`` from ``offset`` on, and ``_tempDataLen``,
of its ``FileDescriptor``); TLS wrappers are looked through to the TCP
transport below. Where neither can be read the hook never waits nor closes.
"""

import asyncio
import fcntl
import logging
import pprint
import random
import struct
import termios
import time
from collections import deque
from functools import partial

from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy

from realtime import events, metrics
from realtime.languages import text_for_headers

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("daphne.access")

CLOSE_SLOW_CONSUMER = 4408
# Sent by the application (realtime.limits, realtime.consumers); autobahn's
# sendClose refuses them.
RFC_CLOSE_CODES = {1008, 1009, 1011, 1013}
POLL_SECONDS = 0.02
# daphne checks every connection's timeouts and pings every 2 s, all at once;
# here a slice of them at a time, so that each is still checked every 2 s.
TIMEOUT_CHECK_ROUND_SECONDS = 2.0
TIMEOUT_CHECK_SLICES = 20
FRAME_HEADER_BYTES = 14

# In the connection's language, chosen from its handshake's headers
# (``slow_reader_text``): the hook sees daphne's protocol, not the scope.
SLOW_CONSUMER = gettext_lazy(
    "You stopped reading: {pending} bytes have been waiting for this socket for {timeout} s "
    "(REALTIME_SEND_TIMEOUT), over the limit of {limit} (REALTIME_SEND_BUFFER_BYTES). "
    "Reconnect with ?last_seq=<the last seq you received>."
)
SLOW_STREAM = gettext_lazy(
    "You stopped reading: {pending} bytes have been waiting for this stream for {timeout} s "
    "(REALTIME_SEND_TIMEOUT), over the limit of {limit} (REALTIME_SEND_BUFFER_BYTES). "
    "Reconnect with Last-Event-ID: <the id of the last event you received>."
)


def pending_bytes(transport) -> int | None:
    """Bytes written to ``transport`` that the client has not received, or None if unknown."""
    for _ in range(3):  # a TLS transport wraps the TCP one
        if transport is None:
            return None
        if hasattr(transport, "dataBuffer") and hasattr(transport, "offset"):
            buffered = len(transport.dataBuffer) - transport.offset
            return buffered + getattr(transport, "_tempDataLen", 0) + kernel_queued(transport)
        transport = getattr(transport, "transport", None)
    return None


def kernel_queued(transport) -> int:
    """Bytes in the socket's kernel send queue not yet acknowledged by the client (Linux)."""
    try:
        answer = fcntl.ioctl(transport.fileno(), termios.TIOCOUTQ, b"\0" * 4)
    except (AttributeError, OSError, ValueError):
        return 0
    return struct.unpack("i", answer)[0]


def frame_bytes_at_most(message: dict) -> int:
    """An upper bound of the bytes a ``websocket.send`` puts on the wire (UTF-8, header)."""
    if message.get("bytes") is not None:
        return len(message["bytes"]) + FRAME_HEADER_BYTES
    return 4 * len(message.get("text") or "") + FRAME_HEADER_BYTES


async def client_keeps_up(protocol, frame_bytes: int) -> bool:
    """Wait until the socket's client has room for another frame; False (and the
    socket closed) if it took nothing in time."""
    return await reader_keeps_up(
        protocol,
        protocol.transport,
        frame_bytes,
        is_open=lambda: protocol.state == protocol.STATE_OPEN,
        cut_off=partial(close_slow_consumer, protocol),
        kind=metrics.WEBSOCKET,
    )


async def reader_keeps_up(
    holder, transport, frame_bytes: int, *, is_open, cut_off, kind: str
) -> bool:
    """Wait until the client of ``transport`` (a ``kind`` of ``realtime.metrics``) has
    room for ``frame_bytes`` more; False, after ``cut_off(pending, limit)``, if it took
    nothing in time.

    What waits can only have grown by what was written since it was last
    measured (kept on ``holder``), so it is measured again only once that bound
    passes the limit: about once a limit's worth of frames while the client
    keeps up.
    """
    limit = settings.REALTIME_SEND_BUFFER_BYTES
    bound = getattr(holder, "pending_bound", None)
    if bound is not None and bound <= limit:
        holder.pending_bound = bound + frame_bytes
        return True
    deadline = None
    while is_open():
        pending = pending_bytes(transport)
        if pending is None:
            return True
        if pending <= limit:
            holder.pending_bound = pending + frame_bytes
            return True
        if deadline is None:
            metrics.send_stalled(kind)
            deadline = time.monotonic() + settings.REALTIME_SEND_TIMEOUT
        if time.monotonic() >= deadline:
            cut_off(pending, limit)
            return False
        await asyncio.sleep(POLL_SECONDS)
    return False


def slow_reader_text(connection, text, pending: int, limit: int) -> str:
    """``text`` (``SLOW_CONSUMER``, ``SLOW_STREAM``) for daphne's ``connection`` (a
    socket's protocol, a stream's request), in the language its headers ask for."""
    timeout = f"{settings.REALTIME_SEND_TIMEOUT:g}"
    said = format_lazy(text, pending=pending, limit=limit, timeout=timeout)
    return text_for_headers(getattr(connection, "clean_headers", ()), said)


def close_slow_consumer(protocol, pending: int, limit: int) -> None:
    logger.info("Closing a socket that is not reading (%s bytes waiting)", pending)
    metrics.slow_reader_closed(metrics.WEBSOCKET)
    text = slow_reader_text(protocol, SLOW_CONSUMER, pending, limit)
    protocol.serverSend(events.encode(events.error_message(text)), False)
    protocol.closeHandshakeTimeout = settings.REALTIME_CLOSE_TIMEOUT
    protocol.sendClose(code=CLOSE_SLOW_CONSUMER)


def end_slow_stream(request, pending: int, limit: int) -> None:
    """An event stream's reader stopped: say so in an ``error`` event, end the
    response, and drop the connection if the client has not read to its end in
    ``REALTIME_CLOSE_TIMEOUT``."""
    from twisted.internet import reactor

    logger.info("Ending an event stream that is not read (%s bytes waiting)", pending)
    metrics.slow_reader_closed(metrics.SSE)
    text = slow_reader_text(request, SLOW_STREAM, pending, limit)
    transport = request.transport
    request.write(f"event: error\ndata: {events.encode(events.error_message(text))}\n\n".encode())
    request.finish()
    if transport is not None:
        transport.loseConnection()
        reactor.callLater(settings.REALTIME_CLOSE_TIMEOUT, transport.abortConnection)


async def stream_reader_keeps_up(request, frame_bytes: int) -> bool:
    """``client_keeps_up`` for an event stream's response (``realtime.sse``)."""
    return await reader_keeps_up(
        request,
        request.transport,
        frame_bytes,
        is_open=lambda: not request.finished and request.channel is not None,
        cut_off=partial(end_slow_stream, request),
        kind=metrics.SSE,
    )


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


# The daphne whose Server.create_application and handle_reply these hooks
# were written against; another may differ.
DAPHNE_VERSION = "4.2.3"


def plain(value):
    """A log argument as it is: autobahn's highlighting, without its cost."""
    return value


class Pretty:
    """pprint's text of a log argument, made only if the line is written: autobahn
    formats its settings for a debug line at every connection."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def timings_text(timings) -> str:
    return pprint.pformat(timings._timings)


def access_log_entry(self, host, date, request, status=None, length=None, **kwargs) -> None:
    """daphne's access log line as a log record (``LOG_FORMAT=json``)."""
    access_logger.info('%s "%s" %s %s', host, request, status or "-", length or "-")


def install() -> None:
    """Bound daphne's send buffers, let it send close codes 1008 and 1009, wait for
    closes, spread protocol pings and timeout checks, give each application a
    lighter input queue, and keep autobahn from styling log arguments it drops."""
    import autobahn.websocket.protocol
    import daphne
    from daphne.access import AccessLogGenerator
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(Server.handle_reply, "bounds_send_buffers", False):
        return
    if daphne.__version__ != DAPHNE_VERSION:
        raise RuntimeError(
            f"realtime.server_hooks was written for daphne {DAPHNE_VERSION}, not "
            f"{daphne.__version__}: check Server.create_application and handle_reply "
            "against the new version, then update DAPHNE_VERSION."
        )
    Server.timeout_checker = check_timeouts_in_slices
    if settings.LOG_FORMAT == "json":
        # daphne writes its access log to a stream of its own, as text.
        AccessLogGenerator.write_entry = access_log_entry
    autobahn.websocket.protocol.hltype = plain
    autobahn.websocket.protocol.hlval = plain
    autobahn.websocket.protocol.pformat = Pretty
    autobahn.websocket.protocol.Timings.__str__ = timings_text
    Server.create_application = create_application
    original = Server.handle_reply

    async def handle_reply(self, protocol, message):
        if message.get("stream_bounded") and message.get("type") == "http.response.body":
            if not await stream_reader_keeps_up(protocol, len(message.get("body", b""))):
                return None
        elif isinstance(protocol, WebSocketProtocol):
            kind = message.get("type")
            if kind == "websocket.send":
                if protocol.state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED):
                    return None  # closing: the application hears of it from websocket.disconnect
                if protocol.state == protocol.STATE_OPEN and not await client_keeps_up(
                    protocol, frame_bytes_at_most(message)
                ):
                    return None
            elif kind == "websocket.close" and message.get("code") in RFC_CLOSE_CODES:
                if protocol.state == protocol.STATE_OPEN:
                    protocol.sendCloseFrame(code=message["code"])
                return None
            elif kind == "websocket.close":
                protocol.closeHandshakeTimeout = settings.REALTIME_CLOSE_TIMEOUT
            elif kind == "websocket.accept":
                spread_first_ping(protocol)
        return await original(self, protocol, message)

    handle_reply.bounds_send_buffers = True
    Server.handle_reply = handle_reply
