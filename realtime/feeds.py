"""The executions feed on ``/api/v1/ws``: each matching execution's state as it changes.

A feed never relies on the channel layer for what it sends: each read is
``executions.feed.feed_read`` from the feed's cursor, which returns every
execution that changed after it, in its current state. The layer only says
when to read: each stored ``status`` event (a creation, a change of status,
progress or message) is announced to ``FEED_GROUP`` with its execution's
owner, and a feed that may see it reads at once, or, when it read less than
``READ_INTERVAL`` ago, when that much has passed (so a burst of changes is one
read, and the latest state). The socket's watchdog also wakes every feed
once per ``REALTIME_RECHECK_INTERVAL``, so an announcement the layer dropped
delays a change by about that much, and never loses it.

Each ``execution`` message carries a cursor from which a resume misses
nothing sent after it: the new cursor on the last message of a read, the
cursor the read started from on the others. A state is sent only when its
``last_seq`` is newer than the one sent before for that execution.

With a status filter, an execution the feed sent that then changes to a
status outside the filter gets one more message, that state, so that a
client's list can let it go (a "running" list sees its executions end).
"""

import asyncio
import dataclasses
import logging
import weakref
from collections import OrderedDict
from functools import cached_property
from typing import Any

from django.contrib.auth import get_user_model

from executions.exceptions import FeedCursorInvalid
from executions.feed import FeedFilter, feed_read
from executions.models import ExecutionEvent
from realtime.db import db_read
from realtime.fanout import fanout
from realtime.publish import publish

logger = logging.getLogger(__name__)

FEED_GROUP = "executions.feed"
EXECUTIONS_FEED = "executions"
# The shortest time between two reads of one feed, in seconds.
READ_INTERVAL = 0.025
# Feed reads one event loop runs at once; the others wait their turn, and the
# changes each waited for are one read when it comes. Without a bound, ten
# feeds read up to 400 times a second and starve the rest of the process.
READS_AT_ONCE = 2
_read_turns: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
    weakref.WeakKeyDictionary()
)


def read_turn() -> asyncio.Semaphore:
    """The running loop's turns for feed reads."""
    loop = asyncio.get_running_loop()
    if loop not in _read_turns:
        _read_turns[loop] = asyncio.Semaphore(READS_AT_ONCE)
    return _read_turns[loop]


# Executions whose last sent ``last_seq`` a feed remembers, to send each state once.
REMEMBERED = 10_000


def feed_announcement(execution_id: Any, owner_id: Any) -> dict:
    """The group message that says an execution's state changed."""
    return {"type": "feed.changed", "execution_id": str(execution_id), "owner_id": owner_id}


def announce_change(event: ExecutionEvent) -> None:
    """Tell the feeds that ``event`` (a committed ``status`` event) changed its execution."""
    # The owner lets each feed tell whether it may see the change (None: every feed reads).
    cached = ExecutionEvent.execution.is_cached(event)
    owner_id = event.execution.owner_id if cached else None
    publish(FEED_GROUP, feed_announcement(event.execution_id, owner_id))


class FeedSubscription:
    """One socket's subscription to the executions feed."""

    finished = False
    _joined = False
    _reading: asyncio.Task | None = None
    _wanted = False
    _last_read = float("-inf")

    def __init__(self, socket, feed_filter: FeedFilter, cursor: str | None, user):
        self.socket = socket
        self.name = EXECUTIONS_FEED
        self.filter = feed_filter
        # Changes are read whatever their status, to see those leaving the filter.
        self.changes_filter = dataclasses.replace(feed_filter, statuses=frozenset())
        self.cursor = cursor
        self.user_id = user.pk
        self.is_staff = user.is_staff
        self.sent: OrderedDict[str, int] = OrderedDict()

    @cached_property
    def lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    @property
    def ending(self) -> bool:
        return self.finished or self.socket.ending

    def viewer(self):
        """The user as of the last access check (``is_staff`` may have changed since connect)."""
        return get_user_model()(pk=self.user_id, is_staff=self.is_staff)

    async def open(self) -> bool:
        """Join the announcements, then send the first read (the backlog, or what
        changed after the cursor). False (and refused) for a bad cursor."""
        await fanout().join(FEED_GROUP, self)
        self._joined = True
        async with self.lock:
            try:
                await self.read_locked()
            except FeedCursorInvalid as error:
                self.finished = True
                await self.socket.feed_refused(self, str(error))
                return False
        return True

    async def leave(self) -> None:
        self.finished = True
        if self._joined:
            self._joined = False
            try:
                await fanout().leave(FEED_GROUP, self)
            except Exception:
                logger.warning("A feed could not leave %s", FEED_GROUP, exc_info=True)

    def deliver(self, message: dict) -> None:
        """Called by ``realtime.fanout`` with each announcement; must not wait."""
        if message.get("type") != "feed.changed" or self.ending:
            return
        owner_id = message.get("owner_id")
        if self.is_staff or owner_id is None or owner_id == self.user_id:
            self.wake()

    def wake(self) -> None:
        """Read again soon (a read running now is followed by another)."""
        self._wanted = True
        if self._reading is None or self._reading.done():
            self._reading = self.socket.spawn(self.read_while_wanted())

    async def read_while_wanted(self) -> None:
        loop = asyncio.get_running_loop()
        while self._wanted and not self.ending:
            wait = self._last_read + READ_INTERVAL - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            async with read_turn(), self.lock:
                # What was announced while waiting for the turn is in this read.
                self._wanted = False
                await self.read_locked()

    async def read_locked(self) -> None:
        """Read from the cursor, page after page, sending every newer state."""
        loop = asyncio.get_running_loop()
        more = True
        while more and not self.ending:
            self._last_read = loop.time()
            chosen = self.filter if self.cursor is None else self.changes_filter
            page = await db_read(feed_read)(self.viewer(), chosen, self.cursor)
            fresh = [state for state in page.states if self.is_new(state) and self.shown(state)]
            for index, state in enumerate(fresh):
                if self.ending:
                    return
                last = index == len(fresh) - 1
                cursor = page.cursor if last or self.cursor is None else self.cursor
                await self.socket.send_json(
                    {"type": "execution", "feed": self.name, "execution": state, "cursor": cursor}
                )
                self.remember(state)
            self.cursor = page.cursor
            more = page.more

    def shown(self, state: dict) -> bool:
        """Whether the state passes the status filter, or leaves it (sent once more)."""
        statuses = self.filter.statuses
        return not statuses or state["status"] in statuses or state["id"] in self.sent

    def is_new(self, state: dict) -> bool:
        sent = self.sent.get(state["id"])
        return sent is None or state["last_seq"] > sent

    def remember(self, state: dict) -> None:
        statuses = self.filter.statuses
        if statuses and state["status"] not in statuses:
            self.sent.pop(state["id"], None)  # it left the filter: told once
            return
        self.sent[state["id"]] = state["last_seq"]
        self.sent.move_to_end(state["id"])
        while len(self.sent) > REMEMBERED:
            self.sent.popitem(last=False)
