"""One periodic check, per event loop, of every socket it serves.

Every ``REALTIME_RECHECK_INTERVAL`` seconds one task per event loop:

* tells each socket the time, so that one that has sent nothing for too long
  can close itself (no timer per socket);
* reads the newest ``seq`` of every watched execution in one query. A socket
  still behind the log at two checks in a row, having sent nothing in
  between, lost a message (not merely received it late) and reads the rest
  from the log. So a dropped terminal event reaches its subscribers within
  about two intervals;
* reads, in one more query, whether each socket's user is still active and
  staff, their current API token and session auth hash, and, in one more
  when some sockets were opened with a session cookie, what those sessions
  hold now; so that a socket whose access was revoked, or whose session
  ended (logout, password change), is closed within about one interval.

That is three queries per interval per process at most, whatever the number
of sockets. The watchdog also counts each user's sockets, for the per-user
cap.
"""

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from django.conf import settings

from executions.selectors import execution_heads
from realtime.db import db_read
from realtime.languages import unspoken
from realtime.selectors import Access, SessionLogin, socket_sessions, socket_users_access

logger = logging.getLogger(__name__)


class Watched(Protocol):
    user_id: Any
    session_key: str | None

    def execution_ids(self) -> set: ...

    def observe_clock(self, now: float) -> None: ...

    def observe_heads(self, heads: dict) -> None: ...

    def observe_access(self, access: Access | None, session: SessionLogin | None) -> None: ...


class LogWatchdog:
    def __init__(self) -> None:
        self.subscribers: set[Watched] = set()
        # Those of the subscribers that are sockets, counted for the per-user cap.
        self.sockets: set[Watched] = set()
        self.sockets_per_user: Counter = Counter()
        self._task: asyncio.Task | None = None

    def admit(self, subscriber: Watched, *, limit: int) -> bool:
        """Start watching ``subscriber``, a socket, unless its user has ``limit`` sockets
        already."""
        if self.sockets_per_user[subscriber.user_id] >= limit:
            return False
        self.sockets.add(subscriber)
        self.sockets_per_user[subscriber.user_id] += 1
        self.watch(subscriber)
        return True

    def watch(self, subscriber: Watched) -> None:
        """Start watching ``subscriber`` outside the sockets' count (a long-poll, which
        has its own cap)."""
        self.subscribers.add(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), context=unspoken())

    def discard(self, subscriber: Watched) -> None:
        self.subscribers.discard(subscriber)
        if subscriber in self.sockets:
            self.sockets.discard(subscriber)
            self.sockets_per_user[subscriber.user_id] -= 1
            if not self.sockets_per_user[subscriber.user_id]:
                del self.sockets_per_user[subscriber.user_id]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.subscribers:
            await asyncio.sleep(settings.REALTIME_RECHECK_INTERVAL)
            subscribers = list(self.subscribers)
            now = loop.time()
            for subscriber in subscribers:
                subscriber.observe_clock(now)
            await self._check_heads(subscribers)
            await self._check_access(subscribers)

    async def _check_heads(self, subscribers: list[Watched]) -> None:
        heads = await self._read(
            execution_heads, set().union(*(s.execution_ids() for s in subscribers))
        )
        if heads is not None:
            for subscriber in subscribers:
                subscriber.observe_heads(heads)

    async def _check_access(self, subscribers: list[Watched]) -> None:
        access = await self._read(socket_users_access, {s.user_id for s in subscribers})
        session_keys = {s.session_key for s in subscribers if s.session_key is not None}
        sessions = await self._read(socket_sessions, session_keys) if session_keys else {}
        if access is None or sessions is None:
            return
        for subscriber in subscribers:
            subscriber.observe_access(
                access.get(subscriber.user_id), sessions.get(subscriber.session_key)
            )

    @staticmethod
    async def _read(selector: Callable, ids: set) -> dict | None:
        try:
            return await db_read(selector)(ids)
        except Exception:
            logger.exception("The socket watchdog could not read the database; retrying")
            return None


_watchdogs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LogWatchdog]" = (
    weakref.WeakKeyDictionary()
)


def watchdog() -> LogWatchdog:
    """The watchdog of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _watchdogs:
        _watchdogs[loop] = LogWatchdog()
    return _watchdogs[loop]
