"""What a server measures of the push: its sockets, what they send, and how late.

A socket is a WebSocket or an event stream (SSE: a socket's consumer behind
an HTTP response); ``transport`` tells them apart. Every measure is a step of
a counter, gauge or histogram in memory, taken where the push already is:
none waits or reads the database. Those taken for every message find their
labels' child in a dict, and read an event's timestamp once for all the
sockets that send it.
"""

import time
from datetime import datetime

from prometheus_client import Counter, Gauge

from executions.metrics import Labelled, bounded, switch
from executions.metrics.onethread import OneThreadCounter, OneThreadHistogram
from executions.metrics.registry import OTHER

WEBSOCKET, SSE = "websocket", "sse"
# The close codes of docs/protocol.md, and the standard ones a client or a
# dropped connection (1006) ends with; any other is "other".
STANDARD_CLOSE_CODES = (1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 1013)
CLOSE_CODES = frozenset(
    str(code) for code in (*STANDARD_CLOSE_CODES, 4400, 4401, 4403, 4404, 4408, 4410, 4429)
)
# What a close code before a socket was admitted means.
REFUSAL_REASONS = {
    4400: "bad_request",
    4401: "unauthenticated",
    4403: "origin",
    4404: "not_found",
    4429: "too_many_sockets",
    1011: "internal_error",
    1013: "unavailable",
}
RATE_LIMITED = "rate_limited"
MESSAGE_TYPES = frozenset(
    {"status", "node", "log", "chunk", "execution", "error", "pong", "unsubscribed"}
)
# Why a message for a socket was dropped before it reached it.
DROP_REASONS = frozenset({"queue_full", "expired", "publish_failed", "inbox_full"})

SOCKETS_OPEN = Gauge(
    "workflows_sockets_open",
    "Sockets open on this server (admitted, not yet ended).",
    ["transport"],
)
SUBSCRIPTIONS = Gauge(
    "workflows_subscriptions",
    "Subscriptions open on this server's sockets: executions followed, executions feeds.",
    ["kind"],
)
LONG_POLLS = Gauge("workflows_long_polls_waiting", "Long-polls waiting on this server.")
CONNECTS = Counter(
    "workflows_socket_connects",
    "Sockets admitted: authenticated, allowed, under the per-user cap.",
    ["transport"],
)
CLOSES = Counter(
    "workflows_socket_closes",
    "Admitted sockets that ended, by close code: the server's when it closed, else the "
    "client's (1006: the connection dropped).",
    ["transport", "code"],
)
REFUSALS = Counter(
    "workflows_socket_handshakes_refused",
    "Socket handshakes refused before the socket was admitted, by reason.",
    ["transport", "reason"],
)
# Stepped at every send, on the event loop that sends: no lock (onethread).
MESSAGES_SENT = OneThreadCounter(
    "workflows_messages_sent", "Messages sent to sockets, by type.", ["transport", "type"]
)
PUSH_LATENCY = OneThreadHistogram(
    "workflows_push_latency_seconds",
    "From a live event's timestamp (when it was recorded) to its send to a socket; "
    "terminal: the event that ended its execution.",
    ["terminal"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GAP_FILLS = Counter(
    "workflows_gap_fills",
    "Gaps in a subscription's live events (a message dropped or overtaken) filled "
    "from the event log.",
)
WATCHDOG_CATCH_UPS = Counter(
    "workflows_watchdog_catch_ups",
    "Subscriptions the watchdog found behind the event log at two checks in a row, "
    "caught up from it.",
)
LAYER_DROPS = Counter(
    "workflows_channel_layer_drops",
    "Messages for sockets dropped on their way (a full queue or inbox, an expiry, a "
    "failed publish), by reason; the sockets read them from the event log.",
    ["reason"],
)
SEND_STALLS = Counter(
    "workflows_send_buffer_stalls",
    "Sends that waited for a client to take what was buffered for it past "
    "REALTIME_SEND_BUFFER_BYTES.",
    ["transport"],
)
SLOW_READER_CLOSES = Counter(
    "workflows_slow_reader_closes",
    "Sockets closed with 4408, and event streams ended, because their client stopped "
    "reading for REALTIME_SEND_TIMEOUT.",
    ["transport"],
)

_open = Labelled(SOCKETS_OPEN)
_subscriptions = Labelled(SUBSCRIPTIONS)
_connects = Labelled(CONNECTS)
_closes = Labelled(CLOSES)
_refusals = Labelled(REFUSALS)
_terminal = PUSH_LATENCY.cell("true")
_live = PUSH_LATENCY.cell("false")
_drops = Labelled(LAYER_DROPS)
_stalls = Labelled(SEND_STALLS)
_slow_closes = Labelled(SLOW_READER_CLOSES)


def start_at_zero() -> None:
    """Make the series of every fixed label set now: one that first appears at its
    first step would have that step missed by ``rate()`` and ``increase()``."""
    for transport in (WEBSOCKET, SSE):
        for labelled in (_open, _connects, _stalls, _slow_closes):
            labelled(transport)
        for reason in (*REFUSAL_REASONS.values(), RATE_LIMITED):
            _refusals(transport, reason)
        for kind in MESSAGE_TYPES:
            MESSAGES_SENT.cell(transport, kind)
    for kind in ("execution", "feed"):
        _subscriptions(kind)
    for reason in DROP_REASONS:
        _drops(reason)


start_at_zero()


def transport_of(scope) -> str:
    return SSE if scope.get("bridge") == SSE else WEBSOCKET


def socket_opened(transport: str) -> bool:
    """A socket was admitted; whether it was counted (``socket_closed`` then counts its end)."""
    if not switch.on:
        return False
    _connects(transport).inc()
    _open(transport).inc()
    return True


def socket_closed(transport: str, code: int | None) -> None:
    """A counted socket ended with ``code``."""
    _open(transport).dec()
    if switch.on:
        _closes(transport, bounded(code, CLOSE_CODES)).inc()


def handshake_refused(transport: str, code: int) -> None:
    if switch.on:
        _refusals(transport, REFUSAL_REASONS.get(code, "other")).inc()


def handshake_rate_limited(transport: str) -> None:
    if switch.on:
        _refusals(transport, RATE_LIMITED).inc()


def subscription_opened(kind: str) -> bool:
    """A subscription (``execution``, ``feed``) began; whether it was counted."""
    if not switch.on:
        return False
    _subscriptions(kind).inc()
    return True


def subscription_closed(kind: str) -> None:
    _subscriptions(kind).dec()


def long_poll_waiting() -> bool:
    if not switch.on:
        return False
    LONG_POLLS.inc()
    return True


def long_poll_answered() -> None:
    LONG_POLLS.dec()


def message_sent(transport: str, kind) -> None:
    if switch.on:
        cell = MESSAGES_SENT.cells.get((transport, kind))
        if cell is None:
            cell = MESSAGES_SENT.cell(transport, kind if kind in MESSAGE_TYPES else OTHER)
        cell[0] += 1


# The last event timestamp read, and its seconds: the sockets of one event
# loop send the same event one after another, so most sends read none.
_last_read: tuple[str, float] = ("", 0.0)


def event_pushed(message: dict, *, terminal: bool) -> None:
    """A live event's ``message`` went out to a socket just now."""
    global _last_read
    if not switch.on:
        return
    stamp = message["timestamp"]
    text, recorded = _last_read
    if stamp != text:
        recorded = datetime.fromisoformat(stamp).timestamp()
        _last_read = (stamp, recorded)
    (_terminal if terminal else _live).observe(max(0.0, time.time() - recorded))


def gap_filled() -> None:
    if switch.on:
        GAP_FILLS.inc()


def watchdog_caught_up() -> None:
    if switch.on:
        WATCHDOG_CATCH_UPS.inc()


def layer_dropped(reason: str, count: int = 1) -> None:
    if switch.on and count:
        _drops(bounded(reason, DROP_REASONS)).inc(count)


def send_stalled(transport: str) -> None:
    if switch.on:
        _stalls(transport).inc()


def slow_reader_closed(transport: str) -> None:
    if switch.on:
        _slow_closes(transport).inc()
