"""Finds sockets that missed events the channel layer dropped.

One task per event loop checks, every ``REALTIME_RECHECK_INTERVAL`` seconds,
the newest ``seq`` of every watched execution in a single query. A socket
still behind the log at two checks in a row, having sent nothing in between,
lost a message (not merely received it late) and reads the rest from the log.
So a dropped terminal event reaches its subscribers within about two
intervals, at the cost of one query per interval per process.
"""

import asyncio
import logging
import weakref
from typing import Protocol

from django.conf import settings

from executions.selectors import execution_heads
from realtime.db import db_read

logger = logging.getLogger(__name__)


class Watched(Protocol):
    execution_id: object

    def observe_head(self, head: int | None) -> None: ...


class LogWatchdog:
    def __init__(self) -> None:
        self.subscribers: set[Watched] = set()
        self._task: asyncio.Task | None = None

    def add(self, subscriber: Watched) -> None:
        self.subscribers.add(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, subscriber: Watched) -> None:
        self.subscribers.discard(subscriber)

    async def _run(self) -> None:
        while self.subscribers:
            await asyncio.sleep(settings.REALTIME_RECHECK_INTERVAL)
            subscribers = list(self.subscribers)
            try:
                heads = await db_read(execution_heads)({s.execution_id for s in subscribers})
            except Exception:
                logger.exception("Could not read the event log heads; retrying")
                continue
            for subscriber in subscribers:
                subscriber.observe_head(heads.get(subscriber.execution_id))


_watchdogs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LogWatchdog]" = (
    weakref.WeakKeyDictionary()
)


def watchdog() -> LogWatchdog:
    """The watchdog of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _watchdogs:
        _watchdogs[loop] = LogWatchdog()
    return _watchdogs[loop]
