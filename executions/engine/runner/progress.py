"""How often a run records its progress, alone and with the other runs of its process."""

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from django.conf import settings

from executions import services

logger = logging.getLogger(__name__)


class ProgressSlots:
    """Spaces the progress-only writes of all the executions of a process.

    Each execution records progress at most ``EXECUTIONS_PROGRESS_EVENTS_PER_SECOND``
    times a second; a process running hundreds of them at once would spend its
    database on progress and make every transition wait behind it. Here all of
    them together record at most ``EXECUTIONS_PROGRESS_EVENTS_PER_SECOND_TOTAL``
    a second: each gets the next free slot, so under load each one's progress
    moves in coarser steps and transitions keep their pace.
    """

    def __init__(self):
        self.next_free = float("-inf")

    def reserve(self, earliest: float) -> float:
        """Reserve the first free slot from ``earliest`` (loop time) on; its time."""
        slot = max(earliest, self.next_free)
        self.next_free = slot + 1 / settings.EXECUTIONS_PROGRESS_EVENTS_PER_SECOND_TOTAL
        return slot


# The runs of a process share one loop, so they share these.
progress_slots = ProgressSlots()


class Progressing(Protocol):
    """What a reporter needs of its run (``executions.engine.runner.run.Run``)."""

    id: Any

    def percent(self) -> int: ...

    async def write(self, service: Callable[..., Any], **kwargs: Any) -> Any: ...


class ProgressReporter:
    """Records progress-only changes at most ``EXECUTIONS_PROGRESS_EVENTS_PER_SECOND``
    times a second per execution, in the process's slots (``ProgressSlots``); the
    latest value is always recorded."""

    def __init__(self, run: Progressing):
        self.run = run
        self.sent = 0
        self.last_time = float("-inf")
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task | None = None
        self.closed = False

    def recorded(self, percent: int) -> None:
        """Another event carried ``percent``; it need not be sent again."""
        self.sent = max(self.sent, percent)

    def changed(self) -> None:
        if self.closed or self.timer is not None or self.task is not None:
            return  # the pending write will read the latest value
        loop = asyncio.get_running_loop()
        now = loop.time()
        own = self.last_time + 1 / settings.EXECUTIONS_PROGRESS_EVENTS_PER_SECOND
        wait = progress_slots.reserve(max(now, own)) - now
        if wait <= 0:
            self.flush()
        else:
            self.timer = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        self.timer = None
        if not self.closed and self.run.percent() > self.sent:
            self.task = asyncio.get_running_loop().create_task(self.write())

    async def write(self) -> None:
        percent = self.run.percent()
        self.last_time = asyncio.get_running_loop().time()
        try:
            await self.run.write(services.execution_progress, progress=percent)
            self.sent = max(self.sent, percent)
        except Exception:
            # Progress is advisory: the next event carries it anyway; the run
            # itself notices a lost claim or an ended execution on its next write.
            logger.warning("Could not record progress of %s", self.run.id, exc_info=True)
            return
        finally:
            self.task = None
        if self.run.percent() > self.sent:
            self.changed()

    async def close(self) -> None:
        """Stop recording; called before the terminal event."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
