"""One execution's stream on a socket: the part both socket endpoints share.

A subscription joins its execution's group *before* it reads the current
state, and forwards only events newer than the last ``seq`` it sent, filling
any gap from the event log. That makes every stream complete, ordered and
free of duplicates even when the channel layer drops or reorders messages.

What may take long (the snapshot or a resume of thousands of events, a gap
fill) runs in tasks of the socket's, one at a time per subscription under
``lock``, and live events that arrive meanwhile wait in ``inbox``.

The socket decides what the end of a subscription means
(``StreamSocket``): ``/api/v1/ws/executions/{id}`` closes, ``/api/v1/ws``
says so in a message and carries on with its other subscriptions.
"""

import asyncio
import logging
import uuid
from collections import deque
from typing import Any, Protocol

from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from executions import log_context, wire
from executions.selectors import events_after, execution_visible_to
from realtime import metrics
from realtime.db import db_read
from realtime.fanout import fanout
from realtime.languages import text_for
from realtime.publish import group_name_for

logger = logging.getLogger(__name__)

CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_BAD_REQUEST = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

# Events read from the log at once when a subscription catches up (resume, gap fill).
CATCH_UP_PAGE = 200
# Live events held for a subscription while it is busy sending; past this the
# oldest are dropped, and read from the log instead when their turn comes.
INBOX_SIZE = 1000

# The database is restarting, out of connections, or locked for too long.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)

# Lazy: each socket says them in its own language (``text_for``, ``events.error_message``).
NOT_FOUND = gettext_lazy("Execution not found: check the id, and that you may see this execution.")
DATABASE_UNAVAILABLE = gettext_lazy(
    "The server could not read the database just now: reconnect in a few seconds, "
    "with ?last_seq=<the last seq you received> to miss nothing."
)
INTERNAL_ERROR = gettext_lazy(
    "The server failed while serving this socket: reconnect "
    "with ?last_seq=<the last seq you received> to miss nothing."
)


class StreamSocket(Protocol):
    """What a subscription needs of the socket that carries it."""

    scope: dict  # the handshake's (its language, realtime.languages)

    @property
    def ending(self) -> bool: ...

    async def send_json(self, content: dict, close: bool = False) -> None: ...

    def spawn(self, work) -> asyncio.Task: ...

    async def subscription_refused(
        self, subscription: "ExecutionSubscription", text: str, code: int
    ) -> None:
        """The subscription cannot go on (``code`` says why); nothing more is sent for it."""

    async def subscription_ended(self, subscription: "ExecutionSubscription") -> None:
        """The execution's terminal event went out."""

    def subscription_failed(
        self, subscription: "ExecutionSubscription", text: str, code: int
    ) -> None:
        """Like ``subscription_refused``, from a failed task; must not wait."""


class ExecutionSubscription:
    """The stream of one execution to one socket."""

    # A socket may hold a thousand: no instance dict.
    __slots__ = (
        "_counted",
        "_joined",
        "_lock",
        "_sending",
        "_stale_at",
        "execution_id",
        "finished",
        "group",
        "inbox",
        "last_seq",
        "owner_id",
        "resume_from",
        "socket",
        "started",
    )

    def __init__(self, socket: StreamSocket, execution_id: uuid.UUID, resume_from: int | None):
        self.socket = socket
        self.execution_id = execution_id
        self.resume_from = resume_from
        self.group = group_name_for(execution_id)
        self.owner_id: Any = None
        self.last_seq = 0
        self.finished = False
        # Set once the snapshot or the resumed events went out; until then the
        # watchdog leaves the subscription alone (its catch-up would race the first
        # send) and live events wait in the inbox.
        self.started = False
        # A task sends (or is about to send) what waits in the inbox; from the
        # subscription's start until its first task, started by ``start``, ends.
        self._sending = True
        self._stale_at: int | None = None
        self._joined = False
        self._counted = False
        self._lock: asyncio.Lock | None = None
        # Live events waiting to be sent, while there are any.
        self.inbox: deque[dict] | None = None

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @property
    def ending(self) -> bool:
        """The stream is over, or its socket is closing: nothing more is forwarded."""
        return self.finished or self.socket.ending

    async def open(self, user):
        """Join the group, then read the execution once: that read authorizes the
        subscription, and anything recorded after it arrives live. The execution,
        or None (and the subscription refused) when ``user`` may not see it."""
        await fanout().join(self.group, self)
        self._joined = True
        self._counted = metrics.subscription_opened("execution")
        execution = await db_read(execution_visible_to)(user, self.execution_id)
        if execution is None:
            await self.refuse(NOT_FOUND, CLOSE_NOT_FOUND)
            return None
        self.owner_id = execution.owner_id
        return execution

    def start(self, execution) -> None:
        """Send the snapshot or the resumed events, then live events, in a task."""
        self.socket.spawn(self.sending(self.stream(execution)))

    async def leave(self) -> None:
        """Stop: nothing more is sent, and the group membership goes."""
        self.finished = True
        if self._counted:
            self._counted = False
            metrics.subscription_closed("execution")
        if self._joined:
            self._joined = False
            try:
                await fanout().leave(self.group, self)
            except Exception:
                logger.warning("A subscription could not leave %s", self.group, exc_info=True)

    async def stream(self, execution) -> None:
        """The first sending task: the snapshot or the resumed events, then what
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
                await self.forward(wire.snapshot_message(execution))
            elif resume_from > execution.last_seq:
                await self.refuse(
                    _(
                        "last_seq %(last_seq)d is ahead of this execution's log "
                        "(its newest seq is %(newest)d)."
                    )
                    % {"last_seq": resume_from, "newest": execution.last_seq},
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
        self.finished = True
        await self.socket.subscription_refused(self, text_for(self.socket.scope, text), code)

    async def guarded(self, work) -> None:
        """Await ``work``; if it fails, log that once (with the execution's id) and end
        the subscription, so that the client resumes it."""
        with log_context.bound(execution_id=self.execution_id):
            try:
                await work
            except TRANSIENT_DB_ERRORS:
                logger.exception(
                    "A socket of execution %s could not read the database", self.execution_id
                )
                self.fail(DATABASE_UNAVAILABLE, CLOSE_TRY_AGAIN_LATER)
            except Exception:
                logger.exception("A socket of execution %s failed", self.execution_id)
                self.fail(INTERNAL_ERROR, CLOSE_INTERNAL_ERROR)

    def fail(self, text: str, code: int) -> None:
        """End the subscription; from any task (one of the fanout's, the watchdog's), so
        ``text`` is put in the socket's language here."""
        if not self.ending:
            self.finished = True
            self.socket.subscription_failed(self, text_for(self.socket.scope, text), code)

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
        elif len(self.inbox) == INBOX_SIZE:
            metrics.layer_dropped("inbox_full")  # its oldest, read from the log instead
        self.inbox.append(event)
        # Before the stream's first task starts (``open`` is still reading),
        # events wait for it; a sending task that runs takes what is added.
        if not self._sending:
            self._sending = True
            self.socket.spawn(self.sending(self.send_inbox()))

    async def sending(self, work) -> None:
        """Run ``work``, a sending task's; whatever arrives after it goes out in a new one."""
        try:
            await self.guarded(work)
        finally:
            self._sending = False

    async def forward_inbox_locked(self) -> None:
        """Forward the live events that waited, reading from the log any gap before one."""
        while self.inbox and not self.ending:
            seq = self.inbox[0]["seq"]
            event = self.inbox.popleft()
            if seq == self.last_seq + 1:
                await self.forward_live(event)
            elif seq > self.last_seq:
                # The layer, or a full inbox, dropped something: the log has it all.
                metrics.gap_filled()
                await self.catch_up_locked(upto=seq, live=True)
        if not self.inbox:
            self.inbox = None

    # The watchdog's periodic check of the log's head

    def observe_head(self, head: int | None) -> None:
        """Called with the newest seq in the log: behind it at two checks in a row,
        having sent nothing in between, the subscription lost a message."""
        if not self.started or self.ending or head is None or head <= self.last_seq:
            self._stale_at = None
        elif self._stale_at == self.last_seq:
            self._stale_at = None
            metrics.watchdog_caught_up()
            self.socket.spawn(self.guarded(self.catch_up()))
        else:
            self._stale_at = self.last_seq

    async def catch_up(self) -> None:
        async with self.lock:
            await self.catch_up_locked(live=True)

    async def catch_up_locked(self, upto: int | None = None, *, live: bool = False) -> None:
        """Forward the stored events after ``last_seq`` (up to ``upto``), a page at a time;
        ``live``: events on their way now (a gap, a lost message), not a resume."""
        send = self.forward_live if live else self.forward
        while not self.ending:
            stored = await db_read(events_after)(
                self.execution_id, self.last_seq, upto=upto, limit=CATCH_UP_PAGE
            )
            for event in stored:
                if self.ending:
                    return
                await send(wire.event_message(event))
            if len(stored) < CATCH_UP_PAGE:
                return

    async def forward(self, message: dict) -> None:
        await self.socket.send_json(message)
        self.last_seq = max(self.last_seq, message["seq"])
        if wire.is_terminal(message):
            await self.finish()

    async def forward_live(self, message: dict) -> None:
        """``forward`` an event on its way now (not a resume), and measure how late it went."""
        await self.forward(message)
        metrics.event_pushed(message, terminal=wire.is_terminal(message))

    async def finish(self) -> None:
        self.finished = True
        await self.socket.subscription_ended(self)
