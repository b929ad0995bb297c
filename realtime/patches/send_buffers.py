"""What waits in the server for each client, bounded: a reader that stops is cut off.

Called from daphne's ``Server.handle_reply`` (``realtime.patches.daphne``)
before each frame of a socket (closed with 4408) and each piece of an event
stream; the measure reads Twisted's write buffers and the kernel's send
queue. docs/patches.md says why and how.
"""

import asyncio
import fcntl
import logging
import struct
import termios
import time
from functools import partial

from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy

from realtime import events, metrics
from realtime.languages import text_for_headers
from realtime.patches.versions import Supported

# Twisted's FileDescriptor (dataBuffer, offset, _tempDataLen); autobahn's
# protocol (state, serverSend, sendClose, closeHandshakeTimeout).
SUPPORTED: Supported = {"twisted": ("26.10.0",), "autobahn": ("26.11.1",)}

logger = logging.getLogger(__name__)

CLOSE_SLOW_CONSUMER = 4408
POLL_SECONDS = 0.02
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
