"""The log lines and stream chunks of every run on a loop, recorded in batches.

A node's ``ctx.log`` and ``ctx.stream`` hand their record to the loop's
``Recorder`` and go on. The recorder writes what is waiting at once when it is
idle, so at low load a record is written as soon as it is made; while a batch
is being written the next one gathers, and is written as soon as that one is
committed, many executions' records in one transaction
(``services.events_record``). Each execution's records go through one lane,
a batch at a time, so they keep the order they were made in; the lanes'
batches are written at once. A run waits for its records
(``Run.drain``) before any other write, so its events keep their order: a
node's lines and chunks come before its ``completed`` or ``failed`` event.
"""

import asyncio
import logging
import time
import weakref
from collections.abc import Callable

from django.conf import settings

from executions import metrics
from executions.engine.db import db
from executions.services.records import Outcome, Record, events_record

logger = logging.getLogger(__name__)

Pending = tuple[Record, asyncio.Future]


class Lane:
    """The records of some executions, written one batch at a time, in order."""

    def __init__(self):
        self.waiting: list[Pending] = []
        self.writing = False


class Recorder:
    """Writes the records of one loop's runs in batches. The executions are
    shared out among ``EXECUTIONS_RECORD_WRITERS`` lanes, each writing one
    batch at a time: batches of different lanes are written at once and never
    hold the same execution, and each execution's records keep their order."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.lanes = [Lane() for _ in range(max(1, settings.EXECUTIONS_RECORD_WRITERS))]

    def add(self, record: Record) -> asyncio.Future:
        """Queue ``record``; the future gets its ``Outcome`` once it is committed."""
        future = self.loop.create_future()
        lane = self.lanes[hash(record.execution_id) % len(self.lanes)]
        lane.waiting.append((record, future))
        if not lane.writing:
            lane.writing = True
            self.loop.create_task(self.write_lane(lane))
        return future

    async def write_lane(self, lane: Lane) -> None:
        try:
            while lane.waiting:
                limit = settings.EXECUTIONS_RECORD_BATCH
                batch, lane.waiting = lane.waiting[:limit], lane.waiting[limit:]
                await self.write(batch)
        finally:
            lane.writing = False

    async def write(self, batch: list[Pending]) -> None:
        metrics.record_batch_written(len(batch))
        try:
            outcomes = await db(events_record, records=[record for record, _ in batch])
        except Exception:
            if len({record.execution_id for record, _ in batch}) == 1:
                raise_into(batch)
                return
            # One execution's bad record must not lose the others': each one alone.
            logger.warning("A batch of %d records failed; each execution's alone", len(batch))
            for part in by_execution(batch):
                await self.write(part)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)


def raise_into(batch: list[Pending]) -> None:
    """Hand the exception being handled to each of ``batch``'s futures."""
    logger.exception("Could not record %d events of one execution", len(batch))
    for _, future in batch:
        if not future.done():
            future.set_exception(RecordFailed("its events could not be recorded; see the log"))


def by_execution(batch: list[Pending]) -> list[list[Pending]]:
    parts: dict = {}
    for pending in batch:
        parts.setdefault(pending[0].execution_id, []).append(pending)
    return list(parts.values())


class RecordFailed(Exception):
    """The database refused a run's log lines or chunks; the run ends with this."""


_recorders: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Recorder]" = (
    weakref.WeakKeyDictionary()
)


def recorder() -> Recorder:
    """The running loop's recorder."""
    loop = asyncio.get_running_loop()
    found = _recorders.get(loop)
    if found is None:
        found = _recorders[loop] = Recorder(loop)
    return found


class RunRecords:
    """One run's records not yet committed, with what their outcomes mean for it."""

    def __init__(self, on_outcome: Callable[[Record, str], None]):
        self.pending: set[asyncio.Future] = set()
        self.on_outcome = on_outcome

    def queue(self, record: Record) -> None:
        """Queue a record for the loop's next batch."""
        made = time.perf_counter()
        future = recorder().add(record)
        self.pending.add(future)
        future.add_done_callback(lambda done: self.settled(record, done, made))

    async def room(self) -> None:
        """Wait while the run has more than ``EXECUTIONS_RECORDS_PENDING`` records waiting."""
        while len(self.pending) > settings.EXECUTIONS_RECORDS_PENDING:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)

    def settled(self, record: Record, future: asyncio.Future, made: float) -> None:
        self.pending.discard(future)
        if not future.cancelled() and future.exception() is None:
            if future.result() == Outcome.RECORDED:
                metrics.event_committed(metrics.RECORD, time.perf_counter() - made)
            self.on_outcome(record, future.result())

    async def drain(self) -> None:
        """Wait until every record queued so far is committed (or failed: raised here)."""
        if self.pending:
            for future in await asyncio.gather(*self.pending, return_exceptions=True):
                if isinstance(future, BaseException):
                    raise future


__all__ = ["Outcome", "Record", "RecordFailed", "RunRecords", "recorder"]
