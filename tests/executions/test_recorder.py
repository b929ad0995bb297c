"""The engine's recorder: batches of many executions' records, in
``EXECUTIONS_RECORD_WRITERS`` lanes written at once, never two batches with the
same execution, each execution's records in the order they were made."""

import asyncio
import threading
import time

import pytest

from executions.engine import recorder
from executions.services.records import Outcome, Record

# The recorder's database threads check their connections before each call
# (close_old_connections), which a connection left by an earlier test makes a
# database access.
pytestmark = pytest.mark.django_db


@pytest.fixture
def written(monkeypatch, settings):
    """Batches as the database would get them, each taking a moment, and which
    executions were being written at once."""
    settings.EXECUTIONS_RECORD_WRITERS = 2
    settings.EXECUTIONS_DB_THREADS = 4
    batches: list[list[Record]] = []
    writing: list[set] = []
    overlaps: list[tuple[set, set]] = []
    lock = threading.Lock()

    def events_record(*, records):
        executions = {r.execution_id for r in records}
        with lock:
            for other in writing:
                overlaps.append((executions, other))
            writing.append(executions)
            batches.append(records)
        time.sleep(0.01)
        with lock:
            writing.remove(executions)
        return [Outcome.RECORDED] * len(records)

    monkeypatch.setattr(recorder, "events_record", events_record)
    return batches, overlaps


async def test_two_batches_at_once_never_share_an_execution_and_keep_each_order(written):
    batches, overlaps = written
    target = recorder.recorder()
    futures = []
    for step in range(40):
        for execution in range(6):
            futures.append(target.add(Record(execution, None, "log", {"n": step})))
        await asyncio.sleep(0.001)
    assert set(await asyncio.gather(*futures)) == {Outcome.RECORDED}

    assert overlaps, "two batches were written at once"
    assert all(not (a & b) for a, b in overlaps), "never with a shared execution"
    for execution in range(6):
        order = [r.data["n"] for batch in batches for r in batch if r.execution_id == execution]
        assert order == list(range(40))
    assert max(len({r.execution_id for r in b}) for b in batches) > 1, "executions share batches"


async def test_a_batch_holds_at_most_the_configured_records(written, settings):
    settings.EXECUTIONS_RECORD_BATCH = 7
    batches, _ = written
    target = recorder.recorder()
    futures = [target.add(Record(n % 3, None, "log", {"n": n})) for n in range(50)]
    await asyncio.gather(*futures)
    assert max(len(batch) for batch in batches) <= 7
    assert sum(len(batch) for batch in batches) == 50
