"""The execution streams' sockets.

``/api/v1/ws/executions/{execution_id}`` carries one execution's stream and
closes when it ends; ``/api/v1/ws`` (``realtime.multiplex``) carries any
number, each subscribed and unsubscribed by the client. Both are a
``SocketConsumer``, which owns what is the socket's: authentication, the
client's frames (answered at once, e.g. ``ping``), the inbound limits, the
idle and access checks, the user's socket slot, and the tasks that send.
What is one execution's (its snapshot, resume, gap fill, live events and the
terminal event) is an ``ExecutionSubscription`` (``realtime.subscription``),
the same for both endpoints.

The consumer's own loop only reads: the client's frames and, through the
subscriptions, the layer's messages. Whatever ends the consumer (a
disconnect, an error, the server cancelling it), it gives back all it holds:
its tasks, its watchdog entry and socket slot, its group memberships.

A socket has no channel of its own on the channel layer
(``realtime.patches.channels.ChannelFreeConsumer``): each subscription joins
its execution's group through ``realtime.fanout``, one subscription per group
per event loop, which hands it each message (``deliver``). Most sockets
sit idle for their whole life, and a server holds thousands, so what a socket
needs only once it sends or receives (its guard, task set) is made when
first needed.

Every refusal and every close the server decides on is preceded by an
``error`` message that says why; the close codes are listed below and in
docs/protocol.md.
"""

import asyncio
import json
import logging
import uuid
from collections.abc import Coroutine, Iterable
from contextlib import nullcontext
from functools import cached_property

from channels.exceptions import StopConsumer
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from realtime import events, metrics
from realtime.auth import (
    SESSION,
    TICKET,
    execution_access_problem,
    origin_allowed,
    socket_access_problem,
)
from realtime.languages import in_socket_language, text_for
from realtime.limits import InboundGuard
from realtime.patches.channels import ChannelFreeConsumer
from realtime.publish import bind_consumer_loop
from realtime.selectors import Access, SessionLogin
from realtime.sse import BRIDGE_OPEN
from realtime.subscription import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NOT_FOUND,
    CLOSE_TRY_AGAIN_LATER,
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    NOT_FOUND,
    TRANSIENT_DB_ERRORS,
    ExecutionSubscription,
)
from realtime.watchdog import watchdog

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_UNAUTHENTICATED = 4401
CLOSE_IDLE = 4410
CLOSE_TOO_MANY_SOCKETS = 4429
# 1008 and 1009 (too many or too big messages): realtime.limits;
# 4408 (stopped reading): realtime.patches.send_buffers.

# Lazy: each socket says them in its own language (``refuse``).
UNAUTHENTICATED = gettext_lazy(
    "Authentication required: send 'Authorization: Bearer <token>', use a ticket from "
    "POST /api/v1/ws-tickets as ?ticket=, or log in with a session."
)
BAD_TICKET = gettext_lazy(
    "This ticket is unknown, expired or already used: get a new one from "
    "POST /api/v1/ws-tickets right before connecting; each works once."
)
ORIGIN_NOT_ALLOWED = gettext_lazy("Origin not allowed for a cookie-authenticated socket.")


class SocketConsumer(ChannelFreeConsumer):
    """What both socket endpoints share; a subclass says what its socket serves."""

    user_id = None
    # The session a cookie-authenticated socket was opened with.
    session_key: str | None = None
    finished = False
    last_heard = 0.0
    _closing: asyncio.Task | None = None
    # Counted among the open sockets (``realtime.metrics``) since it was admitted.
    _counted = False
    # The close code the server sent, else the client's when it disconnected.
    _close_code: int | None = None
    # The socket's own tasks (``spawn``) while it has any.
    _tasks: set[asyncio.Task] | None = None
    # The message types the client may send besides ``ping``, for error messages.
    accepted_types: str | Promise = "'ping'"

    @cached_property
    def guard(self) -> InboundGuard:
        return InboundGuard()

    @cached_property
    def transport(self) -> str:
        """``websocket``, or ``sse`` for a socket served as an event stream."""
        return metrics.transport_of(self.scope)

    @property
    def tasks(self) -> set[asyncio.Task]:
        """The socket's tasks that have not ended yet."""
        return self._tasks or set()

    def subscriptions(self) -> Iterable[ExecutionSubscription]:
        """The socket's execution streams."""
        return ()

    def execution_ids(self) -> set:
        """The executions the watchdog checks the log of, for this socket."""
        return {s.execution_id for s in self.subscriptions()}

    @property
    def ending(self) -> bool:
        """The socket is done, or its close is on its way: nothing more is forwarded."""
        return self.finished or self._closing is not None

    async def open_socket(self) -> bool:
        """Accept the handshake and check who connects; False once refused."""
        loop = asyncio.get_running_loop()
        bind_consumer_loop(loop)
        self.last_heard = loop.time()
        await self.accept()
        problem = self.handshake_problem()
        if problem is not None:
            await self.refuse(*problem)
            return False
        user = self.scope["user"]
        self.user_id = user.pk
        if self.scope.get("auth_method") == SESSION:
            self.session_key = self.scope["session"].session_key
        return True

    async def admit(self) -> bool:
        """Take one of the user's socket slots; False (and refused) past the cap."""
        limit = settings.REALTIME_MAX_SOCKETS_PER_USER
        if watchdog().admit(self, limit=limit):
            self._counted = metrics.socket_opened(self.transport)
            if self.scope.get("bridge"):
                # Served over HTTP (realtime.sse): its response starts now.
                await self.base_send({"type": BRIDGE_OPEN})
            return True
        await self.refuse(
            _(
                "Too many open sockets: at most %(limit)d per user on this server "
                "(REALTIME_MAX_SOCKETS_PER_USER). Close some before opening more."
            )
            % {"limit": limit},
            CLOSE_TOO_MANY_SOCKETS,
        )
        return False

    def handshake_problem(self) -> tuple[str | Promise, int] | None:
        """Why this socket cannot be served, and the close code; None if it can."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            bad_ticket = self.scope.get("auth_problem") == TICKET
            return BAD_TICKET if bad_ticket else UNAUTHENTICATED, CLOSE_UNAUTHENTICATED
        if self.scope.get("auth_method") == SESSION and not origin_allowed(self.scope):
            return ORIGIN_NOT_ALLOWED, CLOSE_FORBIDDEN
        return None

    async def refuse(self, text: str | Promise, code: int) -> None:
        """Say why (``text``, in the socket's language whichever task this runs in), close."""
        if not self._counted:
            metrics.handshake_refused(self.transport, code)
        self.stop()
        await self.send_json(events.error_message(text_for(self.scope, text)))
        await self.close(code=code)

    def send_lock(self):
        """Held while the socket's close is decided (nothing is being forwarded then)."""
        return nullcontext()

    async def close_because(self, text: str | Promise, code: int) -> None:
        """Say why, then close; unless the socket is done already."""
        async with self.send_lock():
            if not self.finished:
                await self.refuse(text, code)

    def close_soon(self, text: str | Promise, code: int) -> None:
        """``close_because`` without waiting: what is being sent stops at the next event."""
        if not self.ending:
            self._closing = self.spawn(self.close_because(text, code))

    def stop(self) -> None:
        """The socket is done: free the user's socket slot at once, so they can reconnect."""
        self.finished = True
        watchdog().discard(self)

    async def disconnect(self, code: int) -> None:
        self.stop()

    async def close(self, code=None, reason=None) -> None:
        if isinstance(code, int) and not isinstance(code, bool):
            self._close_code = code
        await super().close(code=code, reason=reason)

    def send_json(self, content, close=False) -> Coroutine:
        """Channels' ``send_json`` (awaited by the caller), counted by type."""
        metrics.message_sent(self.transport, content.get("type"))
        return super().send_json(content, close=close)

    async def release(self) -> None:
        """Give back everything the socket holds; runs however the consumer ends."""
        self.stop()
        tasks = [task for task in self.tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for subscription in list(self.subscriptions()):
            await subscription.leave()
        if self._counted:
            self._counted = False
            metrics.socket_closed(self.transport, self._close_code)

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
            logger.exception("A socket of user %s could not read the database", self.user_id)
            self.close_soon(DATABASE_UNAVAILABLE, CLOSE_TRY_AGAIN_LATER)
        except Exception:
            logger.exception("A socket of user %s failed", self.user_id)
            self.close_soon(INTERNAL_ERROR, CLOSE_INTERNAL_ERROR)

    async def websocket_disconnect(self, message: dict) -> None:
        if self._close_code is None:
            self._close_code = message.get("code")
        await self.disconnect(message["code"])
        raise StopConsumer()

    # Client -> server

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ending:
            return  # closing: frames still on their way are ignored
        self.last_heard = asyncio.get_running_loop().time()
        problem = self.guard.check_size(text_data, bytes_data)
        content = None
        if problem is None and text_data is not None:
            try:
                content = json.loads(text_data)
            except (ValueError, RecursionError) as error:
                content = error
            problem = self.guard.check_rate(self.last_heard, subscribe=self.is_subscribe(content))
        elif problem is None:
            problem = self.guard.check_rate(self.last_heard)
        if problem is not None:
            return self.close_soon(*problem)
        if text_data is None:
            return await self.send_json(
                events.error_message(_("Binary frames are not supported; send JSON text."))
            )
        if isinstance(content, RecursionError):
            return await self.send_json(events.error_message(_("JSON nested too deeply.")))
        if isinstance(content, ValueError):
            return await self.send_json(events.error_message(_("Invalid JSON.")))
        await self.receive_json(content)

    def is_subscribe(self, content) -> bool:
        """Whether a client message counts against the subscribe requests' budget."""
        return False

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            return await self.send_json(
                events.error_message(_("Each message must be a JSON object with a 'type'."))
            )
        kind = content.get("type")
        if kind == "ping":
            return await self.send_json(events.pong_message())
        expected = {"expected": self.accepted_types}
        if kind is None:
            return await self.send_json(
                events.error_message(_("Missing 'type'; expected %(expected)s.") % expected)
            )
        if not isinstance(kind, str):
            return await self.send_json(
                events.error_message(
                    _("The 'type' must be a string; expected %(expected)s.") % expected
                )
            )
        if not await self.receive_request(kind, content):
            await self.send_json(
                events.error_message(
                    _("Unknown message type %(type)s; expected %(expected)s.")
                    % {"type": repr(kind[:100]), **expected}
                )
            )

    async def receive_request(self, kind: str, content: dict) -> bool:
        """Handle a client message of type ``kind`` other than ``ping``; False if unknown."""
        return False

    # The watchdog's periodic checks

    def observe_clock(self, now: float) -> None:
        """Called by the watchdog with the loop's time: close a socket that went quiet."""
        idle_limit = settings.REALTIME_IDLE_TIMEOUT
        if now - self.last_heard > idle_limit and not self.ending:
            with in_socket_language(self.scope):  # the watchdog's task speaks none
                text = _(
                    "Nothing received for %(seconds)s s (REALTIME_IDLE_TIMEOUT): send "
                    '{"type": "ping"} every 30 s to keep a socket open; reconnect with last_seq.'
                ) % {"seconds": f"{idle_limit:g}"}
            self.close_soon(text, CLOSE_IDLE)

    def observe_access(self, access: Access | None, session: SessionLogin | None) -> None:
        """Called by the watchdog with the user's current state (None: inactive) and,
        for a session socket, what its session holds (None: it ended)."""
        problem = socket_access_problem(
            access, scope=self.scope, user_id=self.user_id, session=session
        )
        if problem is not None:
            return self.close_soon(problem, CLOSE_FORBIDDEN)
        for subscription in list(self.subscriptions()):
            problem = execution_access_problem(
                access, user_id=self.user_id, owner_id=subscription.owner_id
            )
            if problem is not None and subscription.owner_id is not None:
                self.subscription_revoked(subscription, problem)

    def subscription_revoked(
        self, subscription: ExecutionSubscription, problem: str | Promise
    ) -> None:
        """The user may no longer see the subscription's execution."""
        self.close_soon(problem, CLOSE_FORBIDDEN)

    def observe_heads(self, heads: dict) -> None:
        """Called by the watchdog with the newest seq of each execution in the log."""
        for subscription in list(self.subscriptions()):
            subscription.observe_head(heads.get(subscription.execution_id))


class ExecutionConsumer(SocketConsumer):
    """``/api/v1/ws/executions/{execution_id}``: one execution's stream, then a close."""

    subscription: ExecutionSubscription | None = None

    def subscriptions(self) -> Iterable[ExecutionSubscription]:
        return () if self.subscription is None else (self.subscription,)

    @property
    def execution_id(self) -> uuid.UUID | None:
        return None if self.subscription is None else self.subscription.execution_id

    async def connect(self) -> None:
        if not await self.open_socket():
            return
        try:
            execution_id = uuid.UUID(self.scope["url_route"]["kwargs"]["execution_id"])
        except ValueError:
            return await self.refuse(NOT_FOUND, CLOSE_NOT_FOUND)
        resume_from, problem = parse_last_seq(self.scope.get("query_string", b""))
        if problem:
            return await self.refuse(problem, CLOSE_BAD_REQUEST)
        self.subscription = ExecutionSubscription(self, execution_id, resume_from)
        execution = await self.subscription.open(self.scope["user"])
        if execution is None or not await self.admit():
            return
        self.subscription.start(execution)

    def send_lock(self):
        return nullcontext() if self.subscription is None else self.subscription.lock

    # What the subscription's end means here: the socket's end.

    async def subscription_refused(self, subscription, text: str, code: int) -> None:
        await self.refuse(text, code)

    async def subscription_ended(self, subscription) -> None:
        self.stop()
        await self.close(code=CLOSE_NORMAL)

    def subscription_failed(self, subscription, text: str, code: int) -> None:
        self.close_soon(text, code)


def parse_last_seq(query_string: bytes) -> tuple[int | None, str | None]:
    """``(N, None)`` for ``?last_seq=N``, ``(None, None)`` without it, else ``(None, why)``."""
    from urllib.parse import parse_qs

    values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True).get("last_seq")
    if not values:
        return None, None
    raw = values[-1]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None, _("last_seq must be a non-negative integer, got %(value)s.") % {
            "value": repr(raw)
        }
    return int(raw), None


def parse_last_seq_value(value) -> tuple[int | None, str | None]:
    """``parse_last_seq`` for a JSON value: an integer, or absent (None)."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**18:
        shown = repr(value)[:100]
        return None, _("last_seq must be a non-negative integer, got %(value)s.") % {"value": shown}
    return value, None
