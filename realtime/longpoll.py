"""Long-poll: ``GET /api/v1/executions/{id}/events?after=N&wait=S``.

For clients with neither WebSocket nor Server-Sent Events. The view reads
the page as it would without ``wait``; when it is empty and the execution
has not ended, the answer comes from ``events_page_when_recorded`` instead:
an asynchronous body that waits, on the event loop and holding no thread,
until the execution records an event after N (its group's message, or the
sockets' watchdog seeing the log's head move when a message was dropped),
the execution's access is revoked, or S seconds pass, then reads the page.
So the answer is the events endpoint's own page, as soon as there is one.

Each waiting request holds one of its user's ``REALTIME_MAX_SOCKETS_PER_USER``
long-poll slots in this process (``LongPollSlots``): past it the request is
refused with 429 before anything waits. What waits leaves its group and the
watchdog however it ends.
"""

import asyncio
import contextlib
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils.translation import gettext as _
from rest_framework.renderers import JSONRenderer

from executions import exceptions
from executions.selectors import execution_heads
from realtime import metrics
from realtime.auth import execution_access_problem
from realtime.db import db_read
from realtime.fanout import fanout
from realtime.publish import group_name_for
from realtime.watchdog import watchdog


class LongPollSlots:
    """Each user's waiting long-polls in this process; thread-safe (views take
    slots in their threads, the bodies give them back on the loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting: Counter = Counter()

    def take(self, user_id: Any, *, limit: int) -> bool:
        with self._lock:
            if self.waiting[user_id] >= limit:
                return False
            self.waiting[user_id] += 1
            return True

    def give_back(self, user_id: Any) -> None:
        with self._lock:
            self.waiting[user_id] -= 1
            if self.waiting[user_id] <= 0:
                del self.waiting[user_id]


slots = LongPollSlots()


class TooManyWaiting(exceptions.TooManyWaiting):
    """The user has ``limit`` long-polls waiting already."""

    def __init__(self, limit: int):
        super().__init__(
            _(
                "Too many long-polls waiting: at most %(limit)d per user on this server "
                "(REALTIME_MAX_SOCKETS_PER_USER). Wait for one to return before sending "
                "another."
            )
            % {"limit": limit}
        )


class EventWaiter:
    """Waits for an event after ``after`` in one execution's log; a fanout member
    and a watchdog subscriber while it waits."""

    session_key = None

    def __init__(self, execution_id: Any, after: int, *, user_id: Any, owner_id: Any):
        self.execution_id = execution_id
        self.after = after
        self.user_id = user_id
        self.owner_id = owner_id
        self.news = asyncio.Event()
        self.revoked = False

    def deliver(self, message: dict) -> None:
        """A message of the execution's group (``realtime.fanout``)."""
        event = message.get("event") or {}
        if isinstance(event.get("seq"), int) and event["seq"] > self.after:
            self.news.set()

    def execution_ids(self) -> set:
        return {self.execution_id}

    def observe_clock(self, now: float) -> None:
        """Waits end with their own timeout."""

    def observe_heads(self, heads: dict) -> None:
        """The watchdog's read of the log's head: news a dropped message did not bring."""
        head = heads.get(self.execution_id)
        if head is not None and head > self.after:
            self.news.set()

    def observe_access(self, access, session) -> None:
        problem = execution_access_problem(access, user_id=self.user_id, owner_id=self.owner_id)
        if access is None or problem is not None:
            self.revoked = True
            self.news.set()

    async def wait(self, seconds: float) -> None:
        """Until there is news or ``seconds`` passed; having joined the group first,
        the head is read once, so an event recorded before the join is not missed."""
        group = group_name_for(self.execution_id)
        await fanout().join(group, self)
        watchdog().watch(self)  # not one of the sockets: it has its own cap
        counted = metrics.long_poll_waiting()
        try:
            self.observe_heads(await db_read(execution_heads)([self.execution_id]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.news.wait(), seconds)
        finally:
            if counted:
                metrics.long_poll_answered()
            watchdog().discard(self)
            await fanout().leave(group, self)


def events_page_when_recorded(
    *, execution, user_id: Any, after: int, wait: float, page: Callable[[], dict]
) -> StreamingHttpResponse:
    """A 200 whose body, ``page()`` as JSON, is read once the execution has an event
    after ``after`` or ``wait`` seconds passed. Raises ``TooManyWaiting``."""
    limit = settings.REALTIME_MAX_SOCKETS_PER_USER
    if not slots.take(user_id, limit=limit):
        raise TooManyWaiting(limit)
    waiter = EventWaiter(execution.id, after, user_id=user_id, owner_id=execution.owner_id)

    async def body():
        await waiter.wait(wait)
        content = {"next": None, "results": []} if waiter.revoked else await db_read(page)()
        yield JSONRenderer().render(content)

    response = StreamingHttpResponse(body(), content_type="application/json")
    response._resource_closers.append(lambda: slots.give_back(user_id))
    return response


LONG_POLL_PATH = re.compile(r"^/api/v1/executions/[^/]+/events/?$")


def is_long_poll(scope) -> bool:
    """Whether an HTTP request is a long-poll (``events`` with a ``wait`` above 0)."""
    if scope.get("method") != "GET" or not LONG_POLL_PATH.match(scope.get("path", "")):
        return False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return any(value not in ("", "0") for value in query.get("wait", []))


class LongPollRoute:
    """ASGI: long-polls go to ``app`` past ``limited`` (``API_MAX_CONCURRENT_REQUESTS``),
    which would count their wait: what they do in a thread is bounded by the
    request threads all the same, and their wait holds none."""

    def __init__(self, app, limited):
        self.app = app
        self.limited = limited

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and is_long_poll(scope):
            return await self.app(scope, receive, send)
        return await self.limited(scope, receive, send)
