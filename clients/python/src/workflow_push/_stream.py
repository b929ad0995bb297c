"""What following an execution decides, whatever does the I/O: which event comes
next, which transport to open and when, and what each way of failing means.

``follow.py`` (blocking) and ``async_follow.py`` (asyncio) do the reading and
writing around it.
"""

import json
import random
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from workflow_push._sse import ServerSentEvent
from workflow_push.errors import StreamLost, StreamRefused
from workflow_push.options import FollowOptions
from workflow_push.types import JSONObject

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# Close codes (and the same codes in the event stream's errors) after which trying
# again cannot help.
REFUSALS = frozenset({4400, 4401, 4403, 4404})
# The REST statuses of a long poll that are refusals, as the socket's close codes.
REFUSED_STATUSES = {400: 4400, 401: 4401, 403: 4403, 404: 4404}
PING = json.dumps({"type": "ping"})
# Seconds a closing socket waits for the server's answer: after the terminal event
# the server has closed first; a silent connection is not waited for long.
CLOSE_TIMEOUT = 2.0

StateListener = Callable[[str, JSONObject], None]


class Refused(Exception):
    """The server refused for good; ``code`` as a socket close code."""

    def __init__(self, code: int, reason: str):
        self.code = code
        self.reason = reason
        super().__init__(f"refused with {code}: {reason}")


class Unavailable(Exception):
    """The transport could not be opened, or stayed silent past its heartbeat: try the next."""


class Lost(Exception):
    """A connection that opened was lost, or the server asked to come back later."""


class Sequence:
    """One execution's events, each delivered once and in ``seq`` order."""

    def __init__(self, last_seq: int | None):
        #: The seq of the last event delivered; None until the first (the snapshot).
        self.last_seq = last_seq
        #: The terminal status was delivered, or the execution ended before ``last_seq``.
        self.ended = False

    def gap_before(self, message: JSONObject) -> int | None:
        """The last seq to read from the log before ``message`` can follow; None if none."""
        if self.last_seq is None or self.ended or message["seq"] <= self.last_seq + 1:
            return None
        return int(message["seq"]) - 1

    def is_next(self, message: JSONObject) -> bool:
        """Whether ``message`` is the one to deliver now (the snapshot counts, when
        following from no ``last_seq``)."""
        if self.ended:
            return False
        return self.last_seq is None or message["seq"] == self.last_seq + 1

    def delivered(self, message: JSONObject) -> None:
        self.last_seq = message["seq"]
        if message["type"] == "status" and message.get("status") in TERMINAL_STATUSES:
            self.ended = True


class Plan:
    """Which transport to open next, and how long to wait first."""

    def __init__(self, options: FollowOptions, rng: Callable[[], float] = random.random):
        self.options = options
        self.index = 0
        self._rng = rng
        self._step = 0  # reconnections since an event last arrived
        self._unreached = 0  # rounds in a row in which no transport opened

    @property
    def transport(self) -> str:
        return self.options.transports[self.index]

    def opened(self) -> None:
        self._unreached = 0

    def proven(self) -> None:
        """An event arrived: the next reconnection waits the shortest delay."""
        self._step = 0

    def after_unavailable(self, reason: str) -> float:
        """The next transport at once; after the last, the first after the delay."""
        if self.index + 1 < len(self.options.transports):
            self.index += 1
            return 0.0
        self.index = 0
        self._unreached += 1
        retries = self.options.retries
        if retries is not None and self._unreached > retries:
            raise StreamLost(self._unreached, reason)
        return self.delay()

    def delay(self) -> float:
        """The backoff delay before the next reconnection: capped, with jitter."""
        options = self.options
        ceiling = min(
            options.backoff_max, options.backoff_initial * options.backoff_factor**self._step
        )
        self._step += 1
        return ceiling / 2 + self._rng() * ceiling / 2


def ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext | None:
    """The TLS context a ``wss://`` socket uses for the client's ``verify``."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify:
        return None  # websockets' default: verified
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def has_seq(message: Any) -> bool:
    return isinstance(message, dict) and type(message.get("seq")) is int and "type" in message


def with_whole_result(message: JSONObject, result: Any) -> JSONObject:
    """A cut status (``result_truncated``) with its whole ``result``, the markers dropped."""
    kept = {k: v for k, v in message.items() if k not in ("result_truncated", "result_size")}
    return {**kept, "result": result}


def websocket_url(base_url: str, execution_id: str, last_seq: int | None) -> str:
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = f"{parts.path.rstrip('/')}/api/v1/ws/executions/{execution_id}"
    query = "" if last_seq is None else urlencode({"last_seq": last_seq})
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def closed(code: int, reason: str) -> Exception | None:
    """What a socket's close code means; None for 1000 (nothing more to send)."""
    if code == 1000:
        return None
    if code in REFUSALS:
        return Refused(code, reason)
    return Lost(f"the socket closed with {code}" + (f": {reason}" if reason else ""))


def parse_json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def stream_open_failure(status: int, body: Any) -> Exception:
    """What an event stream's (or a long poll's) error answer means: a refusal the
    server gave its close code, a busy server to come back to, or an endpoint that
    is not there (a proxy's page, a server without it)."""
    code = body.get("code") if isinstance(body, dict) else None
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if code in REFUSALS:
        return Refused(code, str(detail))
    if code is not None or status in (429, 503):
        return Lost(f"the server answered {status}: {detail}")
    return Unavailable(f"the event stream answered {status}")


def poll_failure(status: int, body: Any) -> Exception:
    """What a long poll's error status means (the events endpoint is the REST API)."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if status in REFUSED_STATUSES:
        return Refused(REFUSED_STATUSES[status], str(detail))
    return Lost(f"the events endpoint answered {status}: {detail}")


def sse_message(event: ServerSentEvent) -> JSONObject | None:
    """The message an event stream's event carries; an ``error`` event raises what it means."""
    message = parse_json(event.data)
    if event.event == "error":
        code = message.get("code") if isinstance(message, dict) else None
        text = message.get("message", event.data) if isinstance(message, dict) else event.data
        if code in REFUSALS:
            raise Refused(code, str(text))
        raise Lost(f"the server cut the event stream: {text}")
    return message if isinstance(message, dict) else None


def events_page(body: Any) -> tuple[list[JSONObject], str | None]:
    """The events of one page of ``GET /api/v1/executions/{id}/events`` and its ``next``."""
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise Lost("the events endpoint answered something that is not a page of events")
    return [e for e in body["results"] if has_seq(e)], body.get("next")


class StreamState:
    """What a stream shows of itself while it runs, for both kinds of stream."""

    def __init__(
        self,
        execution_id: str,
        last_seq: int | None,
        options: FollowOptions,
        on_state: StateListener | None,
    ):
        self.execution_id = execution_id
        self.options = options
        #: "idle", "connecting", "live", "reconnecting", then "ended", "failed" or "stopped".
        self.state = "idle"
        #: Connections opened after the first.
        self.reconnects = 0
        #: The last ``error`` message the server sent, if any.
        self.last_error: JSONObject | None = None
        self._events = Sequence(last_seq)
        self._plan = Plan(options)
        self._on_state = on_state

    @property
    def last_seq(self) -> int | None:
        """The seq of the last event delivered (to resume from); None before the first."""
        return self._events.last_seq

    @property
    def ended(self) -> bool:
        return self._events.ended

    @property
    def transport(self) -> str:
        """The transport in use now (or to be tried next)."""
        return self._plan.transport

    def _set_state(self, state: str, **detail: object) -> None:
        self.state = state
        if self._on_state is not None:
            detail = {"transport": self.transport, "last_seq": self.last_seq, **detail}
            self._on_state(state, detail)

    def _opened(self) -> None:
        self._plan.opened()
        self._set_state("live")

    def _noted(self, message: JSONObject) -> None:
        """A message without a seq: remember the server's last ``error``."""
        if message.get("type") == "error":
            self.last_error = message

    def _given_way(self, exc: Unavailable) -> float:
        """The delay before the next transport (``Plan.after_unavailable``)."""
        try:
            return self._plan.after_unavailable(str(exc))
        except StreamLost as lost:
            self._set_state("failed", reason=lost.reason)
            raise

    def _stopped(self) -> None:
        if self.state not in ("ended", "failed", "stopped"):
            self._set_state("stopped")

    def _refused(self, exc: Refused) -> StreamRefused:
        self._set_state("failed", code=exc.code, reason=exc.reason)
        return StreamRefused(exc.code, exc.reason)
