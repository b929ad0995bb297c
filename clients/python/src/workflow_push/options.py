"""How a follow connects: its transports, heartbeats, timeouts and backoff."""

from dataclasses import dataclass

TRANSPORTS = ("websocket", "sse", "longpoll")


@dataclass(frozen=True)
class FollowOptions:
    """Every knob of ``follow()``; the defaults suit the server's own (docs/protocol.md).

    A transport that cannot be opened, or that stays silent past its heartbeat, gives
    way to the next one in ``transports`` at once, resuming from the last event; when
    the last one cannot be opened either, the first is tried again after the backoff
    delay. A connection that opened and was then lost is opened again, the same
    transport, after the backoff delay.
    """

    #: The transports to use, in order of preference.
    transports: tuple[str, ...] = TRANSPORTS
    #: A status whose result was cut (``result_truncated``) is delivered with the whole
    #: result, read from ``GET /api/v1/executions/{id}`` (without the markers).
    whole_results: bool = True
    #: Seconds to open a connection (TCP, TLS and the handshake or the response's head).
    open_timeout: float = 10.0
    #: A WebSocket sends ``{"type": "ping"}`` when it opens and every this many seconds
    #: (the server closes sockets that send nothing for 120 s) ...
    ping_interval: float = 30.0
    #: ... and counts as silent when nothing answers a ping within this many seconds.
    pong_timeout: float = 10.0
    #: An event stream (SSE) is silent after this many seconds without a line (the
    #: server writes ``: ping`` every 15 s).
    sse_silence: float = 25.0
    #: A long poll asks the server to hold it this many seconds (1 to 30) ...
    poll_wait: int = 30
    #: ... and is silent when there is no answer this many seconds after that.
    poll_grace: float = 10.0
    #: Empty long polls are at least this many seconds apart (a server that answers at
    #: once, without waiting, is not asked in a tight loop).
    poll_interval: float = 1.0
    #: The delay before the Nth reconnection in a row is between half and all of
    #: ``min(backoff_max, backoff_initial * backoff_factor ** N)`` seconds; it starts
    #: again from the first once an event arrives.
    backoff_initial: float = 0.5
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    #: Give up (``StreamLost``) after this many rounds in a row in which no transport
    #: could be opened; None: never.
    retries: int | None = 8
    #: The largest WebSocket message accepted, in bytes.
    max_message_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        unknown = [name for name in self.transports if name not in TRANSPORTS]
        if unknown or not self.transports:
            raise ValueError(
                f"transports must be one or more of {', '.join(TRANSPORTS)}; got {self.transports}"
            )
        if type(self.poll_wait) is not int or not 1 <= self.poll_wait <= 30:
            raise ValueError(f"poll_wait must be a whole 1 to 30 s; got {self.poll_wait!r}")
