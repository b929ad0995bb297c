"""The execution stream: ``/api/v1/ws/executions/{execution_id}``.

A socket subscribes to its execution's group *before* it reads the current
state, and forwards only events newer than the last ``seq`` it sent, filling
any gap from the event log. That makes every stream complete, ordered and
free of duplicates even when the channel layer drops or reorders messages.

The consumer's own loop only reads: the client's frames (answered at once,
e.g. ``ping``) and the layer's messages. What may take long (the snapshot or
a resume of thousands of events, a gap fill) runs in tasks the consumer owns,
one at a time under ``lock``, and live events that arrive meanwhile wait in
``inbox``. Whatever ends the consumer (a disconnect, an error, the server
cancelling it), it gives back all it holds: its tasks, its watchdog entry and
socket slot, its group membership.

A socket has no channel of its own on the channel layer: it joins its
execution's group through ``realtime.fanout``, one subscription per group
per event loop, which hands it each message (``deliver``). Most sockets sit
idle for their whole life, and a server holds thousands, so what a socket
needs only once it sends or receives (its inbox, lock, guard, task set) is
made when first needed.

Every refusal and every close the server decides on is preceded by an
``error`` message that says why; the close codes are listed below and in
docs/protocol.md.
"""

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Coroutine
from functools import cached_property

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError

from executions.selectors import events_after, execution_visible_to
from realtime import events
from realtime.auth import SESSION, TICKET, access_problem, origin_allowed
from realtime.db import db_read
from realtime.fanout import fanout
from realtime.limits import InboundGuard
from realtime.publish import bind_consumer_loop, group_name_for
from realtime.selectors import Access, SessionLogin
from realtime.watchdog import watchdog

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4410
CLOSE_TOO_MANY_SOCKETS = 4429
# 1008 and 1009 (too many or too big messages): realtime.limits;
# 4408 (stopped reading): realtime.server_hooks.

# Events read from the log at once when a socket catches up (resume, gap fill).
CATCH_UP_PAGE = 200
# Live events held for a socket while it is busy sending; past this the oldest
# are dropped, and read from the log instead when their turn comes.
INBOX_SIZE = 1000

# The database is restarting, out of connections, or locked for too long.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)

NOT_FOUND = "Execution not found: check the id, and that you may see this execution."
UNAUTHENTICATED = (
    "Authentication required: send 'Authorization: Bearer <token>', use a ticket from "
    "POST /api/v1/ws-tickets as ?ticket=, or log in with a session."
)
BAD_TICKET = (
    "This ticket is unknown, expired or already used: get a new one from "
    "POST /api/v1/ws-tickets right before connecting; each works once."
)
DATABASE_UNAVAILABLE = (
    "The server could not read the database just now: reconnect in a few seconds, "
    "with ?last_seq=<the last seq you received> to miss nothing."
)
INTERNAL_ERROR = (
    "The server failed while serving this socket: reconnect "
    "with ?last_seq=<the last seq you received> to miss nothing."
)


class ExecutionConsumer(AsyncJsonWebsocketConsumer):
    execution_id: uuid.UUID | None = None
    resume_from: int | None = None
    user_id = None
    owner_id = None
    # The session a cookie-authenticated socket was opened with.
    session_key: str | None = None
    group: str | None = None
    last_seq = 0
    finished = False
    # Set once the snapshot or the resumed events went out; until then the
    # watchdog leaves the socket alone (its catch-up would race the first send)
    # and live events wait in the inbox.
    started = False
    last_heard = 0.0
    # The task sending what waits in the inbox, when there is one.
    _sending: asyncio.Task | None = None
    _stale_at: int | None = None
    _closing: asyncio.Task | None = None
    # The socket's own tasks (``spawn``) while it has any.
    _tasks: set[asyncio.Task] | None = None
    # Live events waiting to be sent, while there are any.
    inbox: deque[dict] | None = None

    @cached_property
    def lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    @cached_property
    def guard(self) -> InboundGuard:
        return InboundGuard()

    @property
    def tasks(self) -> set[asyncio.Task]:
        """The socket's tasks that have not ended yet."""
        return self._tasks or set()

    async def __call__(self, scope, receive, send) -> None:
        """Channels' ``AsyncConsumer.__call__`` without a channel of the socket's own:
        the client's messages are read here, the group's arrive through ``deliver``."""
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        # Channels runs ``disconnect`` only when the client disconnects: not
        # when a handler raises, nor when the server cancels the consumer.
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            await self.release()

    @property
    def ending(self) -> bool:
        """The stream is over, or its close is on its way: nothing more is forwarded."""
        return self.finished or self._closing is not None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        bind_consumer_loop(loop)
        self.last_heard = loop.time()
        await self.accept()
        problem = self.handshake_problem()
        if problem is not None:
            return await self.refuse(*problem)
        # Subscribe, then read the execution once: that read authorizes the
        # socket, and anything recorded after it arrives live.
        await self.subscribe()
        user = self.scope["user"]
        execution = await db_read(execution_visible_to)(user, self.execution_id)
        if execution is None:
            return await self.refuse(NOT_FOUND, CLOSE_NOT_FOUND)
        self.user_id, self.owner_id = user.pk, execution.owner_id
        if self.scope.get("auth_method") == SESSION:
            self.session_key = self.scope["session"].session_key
        limit = settings.REALTIME_MAX_SOCKETS_PER_USER
        if not watchdog().admit(self, limit=limit):
            return await self.refuse(
                f"Too many open sockets: at most {limit} per user on this server "
                "(REALTIME_MAX_SOCKETS_PER_USER). Close some before opening more.",
                CLOSE_TOO_MANY_SOCKETS,
            )
        self._sending = self.spawn(self.stream(execution))

    def handshake_problem(self) -> tuple[str, int] | None:
        """Why this socket cannot be served, and the close code; None sets ``execution_id``."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            bad_ticket = self.scope.get("auth_problem") == TICKET
            return BAD_TICKET if bad_ticket else UNAUTHENTICATED, CLOSE_UNAUTHENTICATED
        if self.scope.get("auth_method") == SESSION and not origin_allowed(self.scope):
            return "Origin not allowed for a cookie-authenticated socket.", CLOSE_FORBIDDEN
        try:
            execution_id = uuid.UUID(self.scope["url_route"]["kwargs"]["execution_id"])
        except ValueError:
            return NOT_FOUND, CLOSE_NOT_FOUND
        self.resume_from, problem = parse_last_seq(self.scope.get("query_string", b""))
        if problem:
            return problem, CLOSE_BAD_REQUEST
        self.execution_id = execution_id
        return None

    async def subscribe(self) -> None:
        """Join the execution's group (whose messages wait in the inbox until ``connect``
        starts the stream)."""
        self.group = group_name_for(self.execution_id)
        await fanout().join(self.group, self)

    async def stream(self, execution) -> None:
        """The socket's first sending task: the snapshot or the resumed events, then what
        arrived meanwhile."""
        await self.send_initial(execution, self.resume_from)
        await self.send_inbox()

    async def send_inbox(self) -> None:
        async with self.lock:
            await self.forward_inbox_locked()

    async def send_initial(self, execution, resume_from: int | None) -> None:
        """Send the snapshot, or the stored events after ``resume_from``."""
        async with self.lock:
            if resume_from is None:
                await self.forward(events.snapshot_message(execution))
            elif resume_from > execution.last_seq:
                await self.refuse(
                    f"last_seq {resume_from} is ahead of this execution's log "
                    f"(its newest seq is {execution.last_seq}).",
                    CLOSE_BAD_REQUEST,
                )
            else:
                self.last_seq = max(self.last_seq, resume_from)
                await self.catch_up_locked()
                # Unless a close (4403, 1013, ...) cut the resume short.
                if execution.is_finished and not self.ending:
                    await self.finish()
            self.started = True

    async def refuse(self, text: str, code: int) -> None:
        self.stop()
        await self.send_json(events.error_message(text))
        await self.close(code=code)

    async def close_because(self, text: str, code: int) -> None:
        """Say why, then close; unless the stream has ended already."""
        async with self.lock:
            if not self.finished:
                await self.refuse(text, code)

    def close_soon(self, text: str, code: int) -> None:
        """``close_because`` without waiting: what is being sent stops at the next event."""
        if not self.ending:
            self._closing = self.spawn(self.close_because(text, code))

    def stop(self) -> None:
        """The stream is over: free the user's socket slot at once, so they can reconnect."""
        self.finished = True
        watchdog().discard(self)

    async def disconnect(self, code: int) -> None:
        self.stop()

    async def release(self) -> None:
        """Give back everything the socket holds; runs however the consumer ends."""
        self.stop()
        tasks = [task for task in self.tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        group, self.group = self.group, None
        if group is not None:
            try:
                await fanout().leave(group, self)
            except Exception:
                logger.warning("A closed socket could not leave %s", group, exc_info=True)

    def spawn(self, work: Coroutine) -> asyncio.Task:
        """Run ``work`` as a task of this socket's, cancelled when the socket ends."""
        task = asyncio.get_running_loop().create_task(self.guarded(work))
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._tasks = None

    async def guarded(self, work: Coroutine) -> None:
        """Await ``work``; if it fails, log that once and close, so the client reconnects."""
        try:
            await work
        except StopConsumer:
            raise
        except TRANSIENT_DB_ERRORS:
            logger.exception(
                "A socket of execution %s could not read the database", self.execution_id
            )
            self.close_soon(DATABASE_UNAVAILABLE, CLOSE_TRY_AGAIN_LATER)
        except Exception:
            logger.exception("A socket of execution %s failed", self.execution_id)
            self.close_soon(INTERNAL_ERROR, CLOSE_INTERNAL_ERROR)

    # Channels closes the database connections of its shared sync thread before
    # every handler and after a disconnect: a hop to that one thread per
    # message per socket, which queues every socket of the process behind it.
    # This consumer reads only through db_read, whose calls close their own
    # connections, so it dispatches without the hop.

    async def dispatch(self, message: dict) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await self.guarded(handler(message))

    async def websocket_disconnect(self, message: dict) -> None:
        await self.disconnect(message["code"])
        raise StopConsumer()

    # Client -> server

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ending:
            return  # closing: frames still on their way are ignored
        self.last_heard = asyncio.get_running_loop().time()
        problem = self.guard.check(text_data, bytes_data, self.last_heard)
        if problem is not None:
            return self.close_soon(*problem)
        if text_data is None:
            return await self.send_json(
                events.error_message("Binary frames are not supported; send JSON text.")
            )
        try:
            content = json.loads(text_data)
        except ValueError:
            return await self.send_json(events.error_message("Invalid JSON."))
        except RecursionError:
            return await self.send_json(events.error_message("JSON nested too deeply."))
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            return await self.send_json(
                events.error_message("Each message must be a JSON object with a 'type'.")
            )
        kind = content.get("type")
        if kind == "ping":
            return await self.send_json(events.pong_message())
        if kind is None:
            return await self.send_json(events.error_message("Missing 'type'; expected 'ping'."))
        if not isinstance(kind, str):
            return await self.send_json(
                events.error_message("The 'type' must be a string; expected 'ping'.")
            )
        await self.send_json(
            events.error_message(f"Unknown message type {kind[:100]!r}; expected 'ping'.")
        )

    # Channel layer -> client

    def deliver(self, message: dict) -> None:
        """Called by ``realtime.fanout`` with each message sent to the execution's group,
        in order; it must not wait."""
        if message.get("type") != "execution.event":
            logger.warning("A socket got a group message of unknown type %r", message.get("type"))
            return
        event = message["event"]
        if self.ending or event["seq"] <= self.last_seq:
            return
        if self.inbox is None:
            self.inbox = deque(maxlen=INBOX_SIZE)
        self.inbox.append(event)
        # Before the stream's first task starts (``connect`` is still reading),
        # events wait for it; a sending task that runs takes what is added.
        if self._sending is not None and self._sending.done():
            self._sending = self.spawn(self.send_inbox())

    async def forward_inbox_locked(self) -> None:
        """Forward the live events that waited, reading from the log any gap before one."""
        while self.inbox and not self.ending:
            seq = self.inbox[0]["seq"]
            event = self.inbox.popleft()
            if seq == self.last_seq + 1:
                await self.forward(event)
            elif seq > self.last_seq:
                # The layer, or a full inbox, dropped something: the log has it all.
                await self.catch_up_locked(upto=seq)
        if not self.inbox:
            self.inbox = None

    # The watchdog's periodic checks

    def observe_clock(self, now: float) -> None:
        """Called by the watchdog with the loop's time: close a socket that went quiet."""
        idle_limit = settings.REALTIME_IDLE_TIMEOUT
        if now - self.last_heard > idle_limit:
            self.close_soon(
                f"Nothing received for {idle_limit:g} s (REALTIME_IDLE_TIMEOUT): send "
                '{"type": "ping"} every 30 s to keep a socket open; reconnect with last_seq.',
                CLOSE_IDLE,
            )

    def observe_access(self, access: Access | None, session: SessionLogin | None) -> None:
        """Called by the watchdog with the user's current state (None: inactive) and,
        for a session socket, what its session holds (None: it ended)."""
        problem = access_problem(
            access, scope=self.scope, user_id=self.user_id, owner_id=self.owner_id, session=session
        )
        if problem is not None:
            self.close_soon(problem, CLOSE_FORBIDDEN)

    def observe_head(self, head: int | None) -> None:
        """Called by the watchdog with the newest seq in the log."""
        if not self.started or self.ending or head is None or head <= self.last_seq:
            self._stale_at = None
        elif self._stale_at == self.last_seq:
            self._stale_at = None
            self.spawn(self.catch_up())
        else:
            self._stale_at = self.last_seq

    async def catch_up(self) -> None:
        async with self.lock:
            await self.catch_up_locked()

    async def catch_up_locked(self, upto: int | None = None) -> None:
        """Forward the stored events after ``last_seq`` (up to ``upto``), a page at a time."""
        while not self.ending:
            stored = await db_read(events_after)(
                self.execution_id, self.last_seq, upto=upto, limit=CATCH_UP_PAGE
            )
            for event in stored:
                if self.ending:
                    return
                await self.forward(events.event_message(event))
            if len(stored) < CATCH_UP_PAGE:
                return

    async def forward(self, message: dict) -> None:
        await self.send_json(message)
        self.last_seq = max(self.last_seq, message["seq"])
        if events.is_terminal(message):
            await self.finish()

    async def finish(self) -> None:
        self.stop()
        await self.close(code=CLOSE_NORMAL)


def parse_last_seq(query_string: bytes) -> tuple[int | None, str | None]:
    """``(N, None)`` for ``?last_seq=N``, ``(None, None)`` without it, else ``(None, why)``."""
    from urllib.parse import parse_qs

    values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True).get("last_seq")
    if not values:
        return None, None
    raw = values[-1]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None, f"last_seq must be a non-negative integer, got {raw!r}."
    return int(raw), None
