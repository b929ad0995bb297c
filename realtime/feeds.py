"""The executions feed on ``/api/v1/ws``: each matching execution's state as it changes.

A feed never relies on the channel layer for what it sends: what it sends
comes from reads of the database from a cursor, which return every
execution that changed after it, in its current state. A feed's first read
is its own (``feed_read``: the backlog, or the changes after the client's
cursor). After that, one ``FeedHub`` per event loop reads the changes of all
executions (``feed_changes``) from the oldest cursor of its feeds, once for
all of them, and hands each feed what its filter and its user let it see.

Each stored ``status`` event (a creation, a change of status, progress or
message) is announced to ``FEED_GROUP`` once it commits, with its
execution's owner and, mostly, the execution's new state as its writer had
it (``written_state``). A state that comes with its announcement goes out at
once to the feeds whose filter and user admit it (``FeedSubscription.push``),
with the cursor of the feed's last read: a resume from it reads that change
again, so the push needs no place in the order of reads. An announcement
also has the hub read the changes: at once, or, when it read less than
``READ_INTERVAL`` ago, when that much has passed (so a burst of changes is
one read, and the latest states); when every announcement since the last
read brought its state, ``PUSHED_READ_INTERVAL`` after the last read
instead, since what that read finds went out already. The sockets' watchdog
also wakes the hub once per ``REALTIME_RECHECK_INTERVAL``, so an
announcement the layer dropped delays a change by about that much, and
never loses it.

Each ``execution`` message carries a cursor from which a resume misses
nothing sent after it: the new cursor on the last message of a read, the
cursor the read started from on the others. A state is sent only when its
``last_seq`` is newer than the one sent before for that execution.

With a status filter, an execution the feed sent that then changes to a
status outside the filter gets one more message, that state, so that a
client's list can let it go (a "running" list sees its executions end).
"""

import asyncio
import json
import logging
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from functools import cached_property
from typing import Any

from django.contrib.auth import get_user_model

from executions.exceptions import FeedCursorInvalid
from executions.feed import (
    FEED_STATE_FIELDS,
    FeedFilter,
    cursor_floor,
    feed_changes,
    feed_read,
    feed_state_of,
)
from executions.models import Execution, ExecutionEvent
from realtime import metrics
from realtime.db import db_read
from realtime.fanout import fanout
from realtime.languages import unspoken

logger = logging.getLogger(__name__)

FEED_GROUP = "executions.feed"
EXECUTIONS_FEED = "executions"
# The shortest time between two reads of the changes, in seconds.
READ_INTERVAL = 0.025
# ... when the changes since the last read were pushed with their announcements.
PUSHED_READ_INTERVAL = 0.25
# States a feed holds to push while it sends (the latest of each execution's);
# past this, the next read sends what was left out.
PUSH_BACKLOG = 1000
# Workflow names the hub remembers from its reads, for the states pushed
# without one (a writer changing an execution does not read its workflow).
REMEMBERED_NAMES = 10_000
# Executions whose last sent ``last_seq`` a feed remembers, to send each state once.
REMEMBERED = 10_000


def feed_announcement(execution_id: Any, owner_id: Any, state: dict | None = None) -> dict:
    """The group message that says an execution's state changed (to ``state``)."""
    message = {"type": "feed.changed", "execution_id": str(execution_id), "owner_id": owner_id}
    if state is not None:
        message["state"] = state
    return message


def written_state(event: ExecutionEvent) -> dict | None:
    """The feed state of ``event``'s execution as the transaction recording the event
    has it (call it then), its workflow's name None unless loaded; None when the
    event came without its execution, or with one that has moved on or lacks a field."""
    if not ExecutionEvent.execution.is_cached(event):
        return None
    execution = event.execution
    if execution.last_seq != event.seq or execution.get_deferred_fields() & FEED_STATE_FIELDS:
        return None
    named = Execution.workflow.is_cached(execution)
    return feed_state_of(execution, execution.workflow.name if named else None)


def change_announcement(event: ExecutionEvent, state: dict | None = None) -> tuple[str, dict]:
    """The group and message that tell the feeds ``event`` (a committed ``status``
    event) changed its execution, to ``state`` (``written_state`` as recorded) when known."""
    # The owner lets the hub tell whether a feed may see the change (None: read anyway).
    cached = ExecutionEvent.execution.is_cached(event)
    owner_id = event.execution.owner_id if cached else None
    return FEED_GROUP, feed_announcement(event.execution_id, owner_id, state)


class FeedHub:
    """The running loop's feeds, and the one read of changes they share (``hub()``)."""

    def __init__(self) -> None:
        self.feeds: set[FeedSubscription] = set()
        self._joined = False
        self._reading: asyncio.Task | None = None
        self._wanted = False
        # Whether every change since the last read went out with its announcement.
        self._all_pushed = True
        self._last_read = float("-inf")
        self.names: OrderedDict[str, str] = OrderedDict()

    async def add(self, feed: "FeedSubscription") -> None:
        """Hand ``feed`` the changes after its cursor from now on."""
        self.feeds.add(feed)
        if not self._joined:
            self._joined = True
            await fanout().join(FEED_GROUP, self)
        self.wake()  # what changed since the feed's own read

    async def discard(self, feed: "FeedSubscription") -> None:
        self.feeds.discard(feed)
        if not self.feeds and self._joined:
            self._joined = False
            try:
                await fanout().leave(FEED_GROUP, self)
            except Exception:
                logger.warning("The feeds could not leave %s", FEED_GROUP, exc_info=True)

    def deliver(self, message: dict) -> None:
        """Called by ``realtime.fanout`` with each announcement; must not wait."""
        if message.get("type") != "feed.changed":
            return
        owner_id = message.get("owner_id")
        if not any(feed.may_see(owner_id) for feed in self.feeds):
            return
        state = self.named(message.get("state"))
        if state is None or owner_id is None:
            self.wake()
            return
        texts = StateTexts()
        for feed in list(self.feeds):
            feed.push(owner_id, state, texts)
        self.wake(pushed=True)

    def named(self, state: dict | None) -> dict | None:
        """``state`` with its workflow's name, or None when the name is not known."""
        if state is None:
            return None
        if state["workflow_name"] is not None:
            self.remember_names((state,))
            return state
        name = self.names.get(state["workflow_id"])
        return None if name is None else {**state, "workflow_name": name}

    def remember_names(self, states: Iterable[dict]) -> None:
        for state in states:
            self.names[state["workflow_id"]] = state["workflow_name"]
            self.names.move_to_end(state["workflow_id"])
        while len(self.names) > REMEMBERED_NAMES:
            self.names.popitem(last=False)

    def wake(self, pushed: bool = False) -> None:
        """Read again soon (a read running now is followed by another); later when
        what changed was ``pushed`` already."""
        self._wanted = True
        self._all_pushed = self._all_pushed and pushed
        if self._reading is None or self._reading.done():
            self._reading = asyncio.get_running_loop().create_task(
                self.read_while_wanted(), context=unspoken()
            )

    async def read_while_wanted(self) -> None:
        loop = asyncio.get_running_loop()
        while self._wanted and self.feeds:
            interval = PUSHED_READ_INTERVAL if self._all_pushed else READ_INTERVAL
            wait = self._last_read + interval - loop.time()
            if wait > 0:
                # A change that was not pushed may come meanwhile: look again soon.
                await asyncio.sleep(min(wait, READ_INTERVAL))
                continue
            self._wanted, self._all_pushed = False, True
            self._last_read = loop.time()
            try:
                await self.read()
            except Exception:
                logger.exception("The executions feeds could not read the changes; retrying")
                await asyncio.sleep(1)
                self._wanted, self._all_pushed = True, False

    async def read(self) -> None:
        """Read the changes after the oldest cursor, page after page, and hand each
        feed its share; then every feed goes on from the same cursor."""
        feeds = [feed for feed in self.feeds if not feed.ending]
        if not feeds:
            return
        cursor = min((feed.cursor for feed in feeds), key=cursor_floor)
        more = True
        while more:
            changes = await db_read(feed_changes)(cursor)
            more = changes.more
            self.remember_names(state for _, state in changes.changes)
            texts = StateTexts()  # each state encoded once, for all the feeds
            for feed in feeds:
                await feed.take(changes.changes, changes.cursor, texts)
            cursor = changes.cursor


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FeedHub]" = weakref.WeakKeyDictionary()


def hub() -> FeedHub:
    """The feeds of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = FeedHub()
    return _hubs[loop]


class StateTexts(dict):
    """The JSON text of each state of one read, encoded once whatever the feeds."""

    def of(self, state: dict) -> str:
        text = self.get(id(state))
        if text is None:
            text = self[id(state)] = json.dumps(state)
        return text


class FeedSubscription:
    """One socket's subscription to the executions feed."""

    finished = False
    _added = False
    # Counted among the open subscriptions (``realtime.metrics``) while added.
    _counted = False
    _pushing = False
    # States to push, the latest of each execution, while a task sends them.
    pushed: "OrderedDict[str, tuple[dict, StateTexts]] | None" = None

    def __init__(self, socket, feed_filter: FeedFilter, cursor: str | None, user):
        self.socket = socket
        self.name = EXECUTIONS_FEED
        self.filter = feed_filter
        self.cursor = cursor
        self.user_id = user.pk
        self.is_staff = user.is_staff
        self.sent: OrderedDict[str, int] = OrderedDict()

    @cached_property
    def lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    @cached_property
    def message_head(self) -> str:
        """The start of this feed's messages as ``send_json`` would encode them, before
        the state's text (``{"type": ..., "feed": ..., "execution": ..., "cursor": ...}``)."""
        return json.dumps({"type": "execution", "feed": self.name})[:-1]

    @property
    def ending(self) -> bool:
        return self.finished or self.socket.ending

    def may_see(self, owner_id: Any) -> bool:
        """Whether this feed's user may see executions of ``owner_id`` (None: unknown)."""
        return self.is_staff or owner_id is None or owner_id == self.user_id

    def viewer(self):
        """The user as of the last access check (``is_staff`` may have changed since connect)."""
        return get_user_model()(pk=self.user_id, is_staff=self.is_staff)

    async def open(self) -> bool:
        """Send the first read (the backlog, or what changed after the cursor), then
        take the hub's reads. False (and refused) for a bad cursor."""
        async with self.lock:
            try:
                await self.first_read_locked()
            except FeedCursorInvalid as error:
                self.finished = True
                await self.socket.feed_refused(self, str(error))
                return False
            self._added = True
            self._counted = metrics.subscription_opened("feed")
            await hub().add(self)
        return True

    async def leave(self) -> None:
        self.finished = True
        if self._added:
            self._added = False
            if self._counted:
                self._counted = False
                metrics.subscription_closed("feed")
            await hub().discard(self)

    def wake(self) -> None:
        """The watchdog's periodic nudge: read the changes soon."""
        if self._added and not self.ending:
            hub().wake()

    async def first_read_locked(self) -> None:
        more = True
        while more and not self.ending:
            page = await db_read(feed_read)(self.viewer(), self.filter, self.cursor)
            hub().remember_names(page.states)
            await self.send_locked(
                [state for state in page.states if self.is_new(state)], page.cursor, StateTexts()
            )
            more = page.more

    def admits(self, owner_id: Any, state: dict) -> bool:
        """Whether this feed sends ``state`` now: its user and filter let it see it,
        and it is newer than what was sent of that execution."""
        return (
            (self.is_staff or owner_id == self.user_id)
            and self.filter.admits(state, any_status=True)
            and self.shown(state)
            and self.is_new(state)
        )

    async def take(self, changes: list[tuple[Any, dict]], cursor: str, texts: StateTexts) -> None:
        """The hub's read: send what this feed's user and filter let it see."""
        if self.ending:
            return
        async with self.lock:
            fresh = [state for owner_id, state in changes if self.admits(owner_id, state)]
            await self.send_locked(fresh, cursor, texts)

    def push(self, owner_id: Any, state: dict, texts: "StateTexts") -> None:
        """An announced state: send it soon, with the cursor of the last read, if the
        feed admits it; must not wait."""
        if not self._added or self.ending or not self.admits(owner_id, state):
            return
        if self.pushed is None:
            self.pushed = OrderedDict()
        self.pushed.pop(state["id"], None)
        self.pushed[state["id"]] = (state, texts)
        if len(self.pushed) > PUSH_BACKLOG:
            self.pushed.popitem(last=False)  # the next read sends it
        if not self._pushing:
            self._pushing = True
            self.socket.spawn(self.send_pushed())

    async def send_pushed(self) -> None:
        try:
            async with self.lock:
                while self.pushed and not self.ending:
                    _, (state, texts) = self.pushed.popitem(last=False)
                    if self.shown(state) and self.is_new(state):
                        await self.send_locked([state], self.cursor, texts)
                self.pushed = None
        finally:
            self._pushing = False

    async def send_locked(self, states: list[dict], cursor: str, texts: StateTexts) -> None:
        """Send ``states``; the last carries ``cursor``, the others the cursor this
        read started from (a resume from either misses nothing)."""
        head = self.message_head
        for index, state in enumerate(states):
            if self.ending:
                return
            last = index == len(states) - 1
            shown = cursor if last or self.cursor is None else self.cursor
            metrics.message_sent(self.socket.transport, "execution")
            await self.socket.send(
                text_data=f'{head}, "execution": {texts.of(state)}, "cursor": {json.dumps(shown)}}}'
            )
            self.remember(state)
        self.cursor = cursor

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
