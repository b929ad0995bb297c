"""Server-Sent Events: the sockets' streams for clients that cannot keep a WebSocket.

``GET /api/v1/executions/{id}/stream`` is ``/api/v1/ws/executions/{id}``, and
``GET /api/v1/stream?executions=A,B&feed=executions`` is ``/api/v1/ws`` with
those subscriptions, served as ``text/event-stream``. Each is the socket's
own consumer, run behind an HTTP response (``EventStreamBridge``): the same
authentication (plus the one-time ticket, as ``EventSource`` cannot set
headers), authorization, per-user socket cap, snapshot, resume, gap fill,
watchdog, access checks and slow-consumer bound (``realtime.patches.send_buffers``).
What the consumer would send in a frame is one event here: ``id: <seq>``
(the composite position, for many executions), ``event: <type>``, ``data:``
the frame's JSON. A refusal before the stream starts is an HTTP status with
a JSON body; a close afterwards ends the response, after the ``error`` event
that says why. A comment every ``REALTIME_SSE_HEARTBEAT`` seconds keeps
proxies from closing a quiet stream, and stands for the socket's pings.

``Last-Event-ID`` (sent by browsers when they reconnect) resumes: for one
execution it is the last ``seq``; for many it is ``seq,seq,...;cursor``, the
last seq of each execution in the order of ``executions`` (empty: none yet)
and the feed's last cursor, so each part resumes exactly where it was.
"""

import asyncio
import json
import re
from collections import deque
from urllib.parse import parse_qs, quote, urlencode

from django.conf import settings
from django.core import checks
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from realtime.auth import header
from realtime.languages import SCOPE_KEY, in_socket_language, socket_language, text_for

# Sent by a consumer behind a bridge when its socket is admitted: the
# response starts here (an up-to-date resume may send nothing for a while).
BRIDGE_OPEN = "bridge.open"
CLOSE_GOING_AWAY = 1001

# The HTTP status of a refusal before the stream started, by close code.
HTTP_STATUS_OF_CLOSE = {
    4400: 400,
    4401: 401,
    4403: 403,
    4404: 404,
    4429: 429,
    1008: 429,
    1011: 503,
    1013: 503,
}
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
HEARTBEAT = b": ping\n\n"
# Lazy: in the language of the request (``text_for``).
REFUSED = gettext_lazy("The stream was refused.")
READ_WITH_GET = gettext_lazy("Streams are read with GET.")
PING = json.dumps({"type": "ping"})

EXECUTION_STREAM = re.compile(r"^/api/v1/executions/(?P<execution_id>[^/]+)/stream/?$")
MANY_STREAM = re.compile(r"^/api/v1/stream/?$")
FEED_FILTER_PARAMS = ("workflow_id", "status", "tag")


@checks.register
def check_stream_settings(**kwargs) -> list[checks.Error]:
    """A heartbeat that cannot keep a quiet stream from the idle close."""
    heartbeat, idle = settings.REALTIME_SSE_HEARTBEAT, settings.REALTIME_IDLE_TIMEOUT
    if 0 < heartbeat < idle:
        return []
    return [
        checks.Error(
            f"REALTIME_SSE_HEARTBEAT is {heartbeat!r}; it must be above 0 and below "
            f"REALTIME_IDLE_TIMEOUT ({idle!r}), or quiet event streams are closed as idle.",
            id="realtime.E140",
        )
    ]


class BadRequest(Exception):
    """A stream request that cannot be served; its text says what to change."""


class EventStreamBridge:
    """One SSE response: runs a socket consumer on a websocket scope made from the
    request and writes what it sends as events."""

    def __init__(self, socket_app, scope, receive, send, subscribes: list[dict]):
        self.socket_app = socket_app
        self.scope = scope
        self.http_receive = receive
        self.http_send = send
        self.inbound: deque[dict] = deque(
            [{"type": "websocket.connect"}]
            + [{"type": "websocket.receive", "text": json.dumps(s)} for s in subscribes]
        )
        self.wakeup = asyncio.Event()
        self.wakeup.set()
        self.started = False
        self.done = False
        self.early: list[str] = []
        self.positions: StreamPositions | None = None

    async def run(self, socket_scope: dict) -> None:
        watcher = asyncio.get_running_loop().create_task(self.watch_client())
        try:
            await self.socket_app(socket_scope, self.receive, self.send)
        finally:
            watcher.cancel()
            if not self.done:
                await self.finish()

    async def watch_client(self) -> None:
        """Pass the client's disconnect on, and stand in for its pings."""
        heartbeat = settings.REALTIME_SSE_HEARTBEAT
        reading = asyncio.ensure_future(self.http_receive())
        try:
            while True:
                finished, _ = await asyncio.wait([reading], timeout=heartbeat)
                if reading in finished:
                    if reading.result()["type"] == "http.disconnect":
                        return self.push({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
                    reading = asyncio.ensure_future(self.http_receive())
                    continue
                if self.started and not self.done:
                    await self.http_send(
                        {"type": "http.response.body", "body": HEARTBEAT, "more_body": True}
                    )
                self.push({"type": "websocket.receive", "text": PING})
        finally:
            reading.cancel()

    def push(self, message: dict) -> None:
        self.inbound.append(message)
        self.wakeup.set()

    async def receive(self) -> dict:
        """The consumer's next message from its "client": connect, the subscribes, pings."""
        while not self.inbound:
            self.wakeup.clear()
            await self.wakeup.wait()
        return self.inbound.popleft()

    async def send(self, message: dict) -> None:
        """A message of the consumer's, as the response."""
        kind = message["type"]
        if kind == BRIDGE_OPEN:
            await self.start()
        elif kind == "websocket.send" and not self.done:
            text = message.get("text")
            if text is None:
                return
            if self.started:
                await self.write(text)
            else:
                self.early.append(text)
        elif kind == "websocket.close" and not self.done:
            if self.started:
                await self.finish()
            else:
                await self.refuse(message.get("code", 1000))
            # As a client would answer the close: the consumer gives back what it holds.
            self.push({"type": "websocket.disconnect", "code": message.get("code", 1000)})

    async def start(self) -> None:
        self.started = True
        await self.http_send(
            {"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS}
        )
        early, self.early = self.early, []
        for text in early:
            await self.write(text)

    async def write(self, text: str) -> None:
        message = json.loads(text)
        kind = message.get("type")
        if kind == "pong":
            return  # the answer to a ping of ours
        position = (
            self.positions.advance(message) if self.positions is not None else message.get("seq")
        )
        head = "" if position is None else f"id: {position}\n"
        body = f"{head}event: {kind}\ndata: {text}\n\n".encode()
        # Bounded by realtime.patches.send_buffers: a reader that stops is cut off.
        await self.http_send(
            {"type": "http.response.body", "body": body, "more_body": True, "stream_bounded": True}
        )

    async def finish(self) -> None:
        self.done = True
        if self.started:
            await self.http_send({"type": "http.response.body", "body": b"", "more_body": False})

    async def refuse(self, code: int) -> None:
        """The consumer refused before the stream started: an HTTP error instead."""
        self.done = True
        detail = text_for(self.scope, REFUSED)
        for text in self.early:
            message = json.loads(text)
            if message.get("type") == "error":
                detail = message.get("message", detail)
        status = HTTP_STATUS_OF_CLOSE.get(code, 400)
        await http_error(self.http_send, status, detail, code)


class StreamPositions:
    """Where a stream of many executions is: each execution's last seq and the feed's
    cursor, as the composite ``Last-Event-ID``."""

    def __init__(self, execution_ids: list[str], seqs: list[int | None], cursor: str | None):
        self.order = execution_ids
        self.seqs = dict(zip(execution_ids, seqs, strict=True))
        self.cursor = cursor

    def advance(self, message: dict) -> str | None:
        """The position after ``message``; None when it moves nothing."""
        if message.get("type") == "execution" and isinstance(message.get("cursor"), str):
            self.cursor = message["cursor"]
        elif message.get("execution_id") in self.seqs and isinstance(message.get("seq"), int):
            self.seqs[message["execution_id"]] = message["seq"]
        else:
            return None
        return self.text()

    def text(self) -> str:
        seqs = ",".join("" if self.seqs[i] is None else str(self.seqs[i]) for i in self.order)
        return f"{seqs};{self.cursor or ''}"

    @classmethod
    def parse(cls, execution_ids: list[str], text: str | None, cursor: str | None):
        """The positions a ``Last-Event-ID`` names (or none, then ``cursor``)."""
        if not text:
            return cls(execution_ids, [None] * len(execution_ids), cursor)
        seqs_text, separator, last_cursor = text.partition(";")
        parts = seqs_text.split(",") if seqs_text or execution_ids else []
        if not separator or len(parts) != len(execution_ids):
            raise BadRequest(
                _(
                    "Last-Event-ID does not match this stream: send the id of the last event "
                    "received on a stream with the same executions, or none to start over."
                )
            )
        seqs = []
        for part in parts:
            if part and not (part.isascii() and part.isdigit() and len(part) <= 18):
                raise BadRequest(
                    _("Last-Event-ID holds %(part)s where a seq should be.")
                    % {"part": repr(part[:30])}
                )
            seqs.append(int(part) if part else None)
        return cls(execution_ids, seqs, last_cursor or cursor)


async def http_error(send, status: int, detail: str, code: int | None = None) -> None:
    body = {"detail": detail} if code is None else {"detail": detail, "code": code}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def socket_scope_for(scope: dict, path: str, query: dict) -> dict:
    """The websocket scope the socket's consumer would get for this request."""
    query_string = urlencode(query, quote_via=quote).encode()
    return {
        "type": "websocket",
        "asgi": scope.get("asgi", {"version": "3.0"}),
        "http_version": scope.get("http_version", "1.1"),
        "scheme": "wss" if scope.get("scheme") == "https" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": scope.get("root_path", ""),
        "headers": scope.get("headers", []),
        "client": scope.get("client"),
        "server": scope.get("server"),
        "subprotocols": [],
        "extensions": {},
        "bridge": "sse",
        SCOPE_KEY: socket_language(scope),  # from the same headers: chosen once
    }


def query_of(scope) -> dict[str, str]:
    """The request's query parameters, the last of each name."""
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


class EventStreams:
    """ASGI application for the two SSE paths (``matches``); others go to ``http_app``."""

    def __init__(self, socket_app, http_app):
        self.socket_app = socket_app
        self.http_app = http_app

    @staticmethod
    def matches(scope) -> bool:
        path = scope.get("path", "")
        return bool(EXECUTION_STREAM.match(path) or MANY_STREAM.match(path))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.matches(scope):
            return await self.http_app(scope, receive, send)
        if scope.get("method") != "GET":
            return await http_error(send, 405, text_for(scope, READ_WITH_GET))
        try:
            # Outside Django's LocaleMiddleware: the request's language, for a BadRequest.
            with in_socket_language(scope):
                path, query, subscribes, positions = self.socket_request(scope)
        except BadRequest as error:
            return await http_error(send, 400, str(error), 4400)
        bridge = EventStreamBridge(self.socket_app, scope, receive, send, subscribes)
        bridge.positions = positions
        await bridge.run(socket_scope_for(scope, path, query))

    def socket_request(self, scope) -> tuple[str, dict, list[dict], "StreamPositions | None"]:
        """The socket path, query, subscribe messages and positions for this request."""
        query = query_of(scope)
        last_event_id = header(scope, b"last-event-id")
        single = EXECUTION_STREAM.match(scope["path"])
        if single:
            socket_query = {k: v for k, v in query.items() if k in ("ticket", "last_seq")}
            if last_event_id:
                socket_query["last_seq"] = last_event_id.strip()
            path = f"/api/v1/ws/executions/{single['execution_id']}"
            return path, socket_query, [], None
        execution_ids = many_execution_ids(query.get("executions", ""))
        feed = query.get("feed")
        positions = StreamPositions.parse(execution_ids, last_event_id, query.get("cursor"))
        subscribes = []
        for execution_id in execution_ids:
            subscribe = {"type": "subscribe", "execution_id": execution_id}
            if positions.seqs[execution_id] is not None:
                subscribe["last_seq"] = positions.seqs[execution_id]
            subscribes.append(subscribe)
        if feed is not None:
            subscribes.append(feed_subscribe(feed, query, positions.cursor))
        if not subscribes:
            raise BadRequest(
                _("Name what to stream: ?executions=<id>,<id> and/or ?feed=executions.")
            )
        socket_query = {"ticket": query["ticket"]} if "ticket" in query else {}
        return "/api/v1/ws", socket_query, subscribes, positions


def many_execution_ids(text: str) -> list[str]:
    """The ``executions`` parameter's ids, in order, each once; at most one socket's worth."""
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    limit = min(settings.REALTIME_MAX_SUBSCRIPTIONS, settings.REALTIME_MAX_SUBSCRIBES_PER_SECOND)
    if len(ids) > limit:
        raise BadRequest(
            _(
                "Too many executions: at most %(limit)d on one stream "
                "(REALTIME_MAX_SUBSCRIPTIONS, REALTIME_MAX_SUBSCRIBES_PER_SECOND). "
                "Open several streams."
            )
            % {"limit": limit}
        )
    return ids


def feed_subscribe(feed: str, query: dict, cursor: str | None) -> dict:
    """The feed's subscribe message; its filter from ``workflow_id``, ``status``
    (comma-separated) and ``tag``."""
    chosen: dict = {}
    for name in FEED_FILTER_PARAMS:
        if query.get(name):
            chosen[name] = query[name].split(",") if name == "status" else query[name]
    subscribe = {"type": "subscribe", "feed": feed, "filter": chosen}
    if cursor:
        subscribe["cursor"] = cursor
    return subscribe
