"""``AsyncExecutionStream``: one execution followed live, for asyncio.

The same decisions as ``follow.ExecutionStream`` (``_stream`` holds them); the
transports are async generators of the server's messages.
"""

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from workflow_push import _rest, _stream
from workflow_push._sse import EventStreamParser
from workflow_push._stream import (
    CLOSE_TIMEOUT,
    PING,
    TERMINAL_STATUSES,
    Lost,
    Refused,
    StateListener,
    StreamState,
    Unavailable,
)
from workflow_push.errors import WorkflowPushError
from workflow_push.options import FollowOptions
from workflow_push.types import JSONObject

# An async generator of messages (a transport's) or of events (a follow's).
Events = AsyncGenerator[JSONObject, None]

if TYPE_CHECKING:
    from workflow_push.async_client import AsyncClient


class AsyncExecutionStream(StreamState):
    """``async for event in client.follow(id)``; ``await stream.aclose()``, or use it as an
    async context manager, to stop early (the connection is closed at once).
    ``last_seq``, ``transport``, ``state`` and ``reconnects`` show where it is.

    It ends after the terminal status; raises ``StreamRefused`` when the server
    refuses it for good, ``StreamLost`` when nothing could be reached for
    ``options.retries`` rounds.
    """

    def __init__(
        self,
        client: "AsyncClient",
        execution_id: str,
        *,
        last_seq: int | None,
        options: FollowOptions,
        on_state: StateListener | None,
    ):
        super().__init__(execution_id, last_seq=last_seq, options=options, on_state=on_state)
        self._client = client
        self._iterator: Events | None = None

    def __aiter__(self) -> AsyncIterator[JSONObject]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def aclose(self) -> None:
        """Stop following; the connection is closed."""
        if self._iterator is not None:
            await self._iterator.aclose()
        self._stopped()

    async def __aenter__(self) -> "AsyncExecutionStream":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self) -> Events:
        opening = 0
        while not self.ended:
            if opening:
                self.reconnects += 1
            opening += 1
            self._set_state("reconnecting" if self.reconnects else "connecting")
            try:
                async with aclosing(self._follow(self._transport(self.transport))) as events:
                    async for event in events:
                        yield event
                delay = 0.0 if self.ended else self._plan.delay()
            except Refused as exc:
                raise self._refused(exc) from None
            except Unavailable as exc:
                delay = self._given_way(exc)
            except Lost:
                delay = self._plan.delay()
            if not self.ended and delay:
                self._set_state("reconnecting", delay=delay)
                await asyncio.sleep(delay)
        self._set_state("ended")

    async def _follow(self, messages: Events) -> Events:
        """Deliver what one connection brings; when it ends cleanly, what the log holds."""
        async with aclosing(messages):
            async for message in messages:
                for event in await self._accept(message):
                    yield event
                if self.ended:
                    return
        for event in await self._settle():
            yield event

    def _transport(self, name: str) -> Events:
        last_seq = self.last_seq
        if name == "websocket":
            return self._websocket(last_seq)
        if name == "sse":
            return self._sse(last_seq)
        return self._longpoll(last_seq)

    # Delivery: each step returns the events it delivered, in order.

    async def _accept(self, message: JSONObject) -> list[JSONObject]:
        if not _stream.has_seq(message):
            self._noted(message)
            return []
        self._plan.proven()
        delivered = []
        upto = self._events.gap_before(message)
        if upto is not None:
            delivered += await self._fill(upto)
        if self._events.is_next(message):
            delivered.append(await self._deliver(message))
        return delivered

    async def _fill(self, upto: int | None) -> list[JSONObject]:
        """Deliver the stored events after the last one, up to ``upto`` (None: all)."""
        delivered = []
        try:
            async for event in self._client.events(self.execution_id, after=self.last_seq or 0):
                if self.ended or (upto is not None and event["seq"] > upto):
                    break
                if _stream.has_seq(event) and self._events.is_next(event):
                    delivered.append(await self._deliver(event))
        except WorkflowPushError as exc:
            raise Lost(f"could not read the stored events: {exc}") from exc
        return delivered

    async def _settle(self) -> list[JSONObject]:
        """The server has nothing more to send, yet no terminal status came: read the
        log; if the execution has ended (it ended before ``last_seq``), so has this."""
        delivered = await self._fill(None)
        if self.ended:
            return delivered
        if await self._execution_ended():
            delivered += await self._fill(None)
            self._events.ended = True
        return delivered

    async def _deliver(self, message: JSONObject) -> JSONObject:
        if self.options.whole_results and message.get("result_truncated"):
            try:
                execution = await self._client.get_execution(self.execution_id)
            except WorkflowPushError as exc:
                raise Lost(f"could not read the whole result: {exc}") from exc
            message = _stream.with_whole_result(message, execution["result"])
        self._events.delivered(message)
        return message

    async def _execution_ended(self) -> bool:
        try:
            execution = await self._client.get_execution(self.execution_id)
        except WorkflowPushError as exc:
            raise Lost(f"could not read the execution: {exc}") from exc
        return execution["status"] in TERMINAL_STATUSES

    # Transports

    async def _websocket(self, last_seq: int | None) -> Events:
        url = _stream.websocket_url(self._client.base_url, self.execution_id, last_seq)
        try:
            socket = await connect(
                url,
                additional_headers=_rest.socket_headers(self._client.headers),
                user_agent_header=_rest.USER_AGENT,
                open_timeout=self.options.open_timeout,
                close_timeout=CLOSE_TIMEOUT,
                max_size=self.options.max_message_bytes,
                ssl=_stream.ssl_context(self._client.verify) if url.startswith("wss:") else None,
            )
        except InvalidStatus as exc:
            code = exc.response.status_code
            raise Unavailable(f"the WebSocket handshake was answered {code}") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise Unavailable(f"could not open a WebSocket: {exc!r}") from exc
        async with socket:
            self._opened()
            try:
                async for message in self._socket_messages(socket):
                    yield message
            except Unavailable:
                # Silent: a close handshake would wait for an answer that is not coming.
                socket.transport.abort()
                raise

    async def _socket_messages(self, socket: ClientConnection) -> Events:
        options, clock = self.options, time.monotonic
        next_ping, pong_due = clock(), None  # a ping at once: the path works both ways
        try:
            while True:
                now = clock()
                if pong_due is not None and now >= pong_due:
                    raise Unavailable(f"no pong within {options.pong_timeout} s of a ping")
                if now >= next_ping:
                    await socket.send(PING)
                    next_ping = now + options.ping_interval
                    pong_due = pong_due or now + options.pong_timeout
                try:
                    async with asyncio.timeout(min(next_ping, pong_due or next_ping) - now):
                        frame = await socket.recv()
                except TimeoutError:
                    continue
                pong_due = None  # anything at all shows the connection is alive
                message = _stream.parse_json(frame)
                if isinstance(message, dict) and message.get("type") != "pong":
                    yield message
        except ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "")
            text = reason or str((self.last_error or {}).get("message", ""))
            outcome = _stream.closed(code, text)
            if outcome is not None:
                raise outcome from exc

    async def _sse(self, last_seq: int | None) -> Events:
        url = _rest.url(self._client.base_url, f"/api/v1/executions/{self.execution_id}/stream")
        params = {} if last_seq is None else {"last_seq": last_seq}
        headers = {**self._client.headers, "Accept": "text/event-stream"}
        timeout = httpx.Timeout(self.options.open_timeout, read=self.options.sse_silence)
        opened = False
        try:
            async with self._client.http.stream(
                "GET", url, params=params, headers=headers, timeout=timeout
            ) as response:
                if response.status_code != 200 or not _rest.is_event_stream(response):
                    await response.aread()
                    body = _stream.parse_json(response.content)
                    raise _stream.stream_open_failure(response.status_code, body)
                opened = True
                self._opened()
                parser = EventStreamParser()
                async for line in response.aiter_lines():
                    event = parser.feed(line)
                    message = None if event is None else _stream.sse_message(event)
                    if message is not None:
                        yield message
        except httpx.TimeoutException as exc:
            raise Unavailable(f"the event stream was silent: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise (Lost if opened else Unavailable)(f"the event stream: {exc!r}") from exc

    async def _longpoll(self, last_seq: int | None) -> Events:
        options, after, opened = self.options, last_seq or 0, False
        call = _rest.events(self.execution_id, after)
        timeout = httpx.Timeout(options.open_timeout, read=options.poll_wait + options.poll_grace)
        while True:
            started = time.monotonic()
            params = {**(call.params or {}), "after": after, "wait": options.poll_wait}
            try:
                response = await self._client.http.get(
                    _rest.url(self._client.base_url, call.path),
                    params=params,
                    headers=self._client.headers,
                    timeout=timeout,
                )
            except httpx.TimeoutException as exc:
                raise Unavailable(f"a long poll got no answer: {exc!r}") from exc
            except httpx.TransportError as exc:
                raise (Lost if opened else Unavailable)(f"a long poll: {exc!r}") from exc
            if response.status_code != 200:
                body = _stream.parse_json(response.content)
                raise _stream.poll_failure(response.status_code, body)
            if not opened:
                opened = True
                self._opened()
            events, _ = _stream.events_page(_stream.parse_json(response.content))
            for event in events:
                after = max(after, event["seq"])
                yield event
            if events:
                continue
            if await self._execution_ended():
                return
            await asyncio.sleep(max(0.0, options.poll_interval - (time.monotonic() - started)))
