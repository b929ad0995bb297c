"""The realtime app's settings, each declared once (``executions.env``).

``project.settings`` reads them from the environment; the app reads them
from ``django.conf.settings`` at call time, so ``override_settings`` works.
"""

from executions.env import integer, rate, seconds

SETTINGS = [
    integer(
        "REDIS_MAX_CONNECTIONS",
        "50",
        "connections per process and event loop in the channel layer's pool",
        minimum=1,
    ),
    integer(
        "REALTIME_DB_THREADS",
        "8",
        "threads serving sockets' database reads in one server process",
        minimum=1,
    ),
    seconds(
        "REALTIME_RECHECK_INTERVAL",
        "1.0",
        "seconds between a server's checks of the event log for events the channel layer dropped",
        above=0,
    ),
    integer(
        "REALTIME_FEED_BACKLOG",
        "50",
        (
            "executions an executions feed subscribed without a cursor starts with: the newest "
            "that match its filter, in their current state (0 to 1000)"
        ),
    ),
    integer(
        "REALTIME_TICKET_TTL_SECONDS",
        "60",
        "lifetime of a socket ticket from `POST /api/v1/ws-tickets`",
        unit="seconds",
        minimum=1,
    ),
    rate("API_WS_TICKET_RATE", "60/minute", "`POST /api/v1/ws-tickets` requests per user"),
    # Generous: a reconnect storm after a deploy, or thousands of sockets from one
    # address, fit.
    rate(
        "REALTIME_HANDSHAKE_RATE",
        "10000/minute",
        (
            "socket handshakes per client address on one server process, counted before "
            "authentication reads the database (`N/second`, `N/minute`, `N/hour`, `N/day`; empty "
            "or `0`: no limit); more: error, close 4429"
        ),
        zero_is_off=True,
    ),
    integer(
        "REALTIME_MAX_SOCKETS_PER_USER",
        "50",
        "open sockets per user on one server process; more: error, close 4429",
        minimum=1,
    ),
    integer(
        "REALTIME_MAX_SUBSCRIPTIONS",
        "1000",
        (
            "executions one `/api/v1/ws` socket may follow at once; more: an `error` with code "
            "4429 for that subscription"
        ),
        minimum=1,
    ),
    # daphne refuses frames over its own limit first (realtime.checks).
    integer(
        "REALTIME_MAX_MESSAGE_BYTES",
        "65536",
        "largest inbound frame (64 KiB); larger: error, close 1009",
        unit="bytes",
        minimum=1,
    ),
    integer(
        "REALTIME_MAX_MESSAGES_PER_SECOND",
        "20",
        "inbound messages one socket may send in any second; more: error, close 1008",
        minimum=1,
    ),
    integer(
        "REALTIME_MAX_SUBSCRIBES_PER_SECOND",
        "500",
        (
            "subscribe and unsubscribe requests one `/api/v1/ws` socket may send in any second "
            "(apart from `REALTIME_MAX_MESSAGES_PER_SECOND`); more: error, close 1008"
        ),
        minimum=1,
    ),
    integer(
        "REALTIME_SEND_BUFFER_BYTES",
        "1048576",
        "bytes that may wait for one socket's client (1 MiB); past it its sends wait",
        unit="bytes",
        minimum=1,
    ),
    seconds(
        "REALTIME_SEND_TIMEOUT",
        "5",
        "seconds a socket may stay past its send buffer before it is closed with 4408",
        above=0,
    ),
    seconds(
        "REALTIME_CLOSE_TIMEOUT",
        "10",
        (
            "seconds the server waits for the client to answer its close (end of a stream, 4408) "
            "before dropping the connection and what it has not read"
        ),
        above=0,
    ),
    seconds(
        "REALTIME_IDLE_TIMEOUT",
        "120",
        "seconds a socket may send nothing (not even a ping) before it is closed with 4410",
        above=0,
    ),
    seconds(
        "REALTIME_SSE_HEARTBEAT",
        "15",
        (
            "seconds between the comments of a quiet event stream (SSE); below "
            "`REALTIME_IDLE_TIMEOUT`"
        ),
    ),
]
