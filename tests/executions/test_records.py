"""Log lines and chunks of many executions recorded in one transaction
(``services.records.events_record``): gap-free seqs, fencing, one announcement
per event."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from executions import services
from executions.models import ExecutionEvent
from executions.services.records import Outcome, Record, events_record
from executions.signals import event_recorded
from executions.wire import chunk_data, log_data
from tests.factories import make_execution, make_user
from tests.services import require_postgres_and_redis

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def announced():
    """Every (execution id, seq) the event log announces, in order."""
    seen: list[tuple] = []

    def receiver(sender, event, using, **kwargs):
        seen.append((event.execution_id, event.seq))

    event_recorded.connect(receiver, dispatch_uid="tests.announced")
    yield seen
    event_recorded.disconnect(dispatch_uid="tests.announced")


def started():
    execution = make_execution(make_user())
    return services.execution_start(execution_id=execution.id, runner="w1")


def line(execution, text: str, token=None) -> Record:
    token = execution.claim_token if token is None else token
    return Record(execution.id, token, "log", log_data(None, "info", text))


def stored(execution) -> list[tuple]:
    return list(
        ExecutionEvent.objects.filter(execution=execution)
        .order_by("seq")
        .values_list("seq", "type", "data")
    )


def test_a_batch_gives_each_execution_gap_free_seqs_in_record_order(announced):
    a, b = started(), started()
    before = {a.id: len(stored(a)), b.id: len(stored(b))}
    chunk = chunk_data(node_id="n", stream="output", attempt=1, data="piece")
    records = [
        line(a, "a1"),
        line(b, "b1"),
        Record(a.id, a.claim_token, "chunk", chunk),
        line(b, "b2"),
        line(a, "a2"),
    ]
    announced.clear()

    assert events_record(records=records) == [Outcome.RECORDED] * 5

    for execution, expected in ((a, ["a1", "piece", "a2"]), (b, ["b1", "b2"])):
        events = stored(execution)
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
        new = events[before[execution.id] :]
        assert [d.get("message", d.get("data")) for _, _, d in new] == expected
        execution.refresh_from_db()
        assert execution.last_seq == len(events)
    # One announcement per stored event, in seq order per execution.
    assert sorted(announced) == sorted(
        (e.id, seq) for e in (a, b) for seq in range(before[e.id] + 1, len(stored(e)) + 1)
    )
    assert len(announced) == len(set(announced)) == 5


def test_single_writes_are_announced_once_each(announced):
    execution = started()
    announced.clear()
    services.execution_log(execution_id=execution.id, node_id=None, level="info", message="x")
    services.execution_progress(execution_id=execution.id, progress=10)
    events = stored(execution)
    assert announced == [(execution.id, seq) for seq, _, _ in events[-2:]]


def test_a_lost_claim_or_an_ended_execution_records_nothing_of_theirs_and_the_rest_goes_on():
    kept, taken, ended = started(), started(), started()
    services.execution_finish(execution_id=ended.id, status="cancelled")
    lengths = {e.id: len(stored(e)) for e in (kept, taken, ended)}

    outcomes = events_record(
        records=[line(taken, "stale", token=uuid.uuid4()), line(kept, "ok"), line(ended, "late")]
    )

    assert outcomes == [Outcome.CLAIM_LOST, Outcome.RECORDED, Outcome.ENDED]
    assert len(stored(kept)) == lengths[kept.id] + 1
    assert len(stored(taken)) == lengths[taken.id]
    assert len(stored(ended)) == lengths[ended.id]
    assert stored(ended)[-1][2]["status"] == "cancelled", "the terminal event stays last"


def test_the_log_limit_holds_within_a_batch(settings):
    settings.EXECUTIONS_MAX_LOG_LINES = 2
    execution = started()
    execution.refresh_from_db()
    already = execution.log_lines
    settings.EXECUTIONS_MAX_LOG_LINES = already + 2
    outcomes = events_record(records=[line(execution, f"l{i}") for i in range(4)])
    assert outcomes == [Outcome.RECORDED, Outcome.RECORDED, Outcome.RECORDED, Outcome.DROPPED]
    messages = [d["message"] for _, t, d in stored(execution) if t == "log"]
    assert messages[-3:-1] == ["l0", "l1"]
    assert "EXECUTIONS_MAX_LOG_LINES" in messages[-1]


WRITER = """
import json, os, random, sys
import django
django.setup()
from executions.wire import log_data
from executions.services.records import Record, events_record
targets = json.loads(sys.argv[1])
batches = int(sys.argv[2])
counts = {}
for index in range(batches):
    chosen = random.sample(targets, k=len(targets))
    text = f"{os.getpid()} {index}"
    records = [
        Record(target["id"], target["token"], "log", log_data(None, "info", text))
        for target in chosen
    ]
    for record, outcome in zip(records, events_record(records=records)):
        key = record.execution_id + " " + outcome
        counts[key] = counts.get(key, 0) + 1
print(json.dumps(counts))
"""


@pytest.mark.services
def test_batches_from_several_processes_keep_seqs_gap_free_and_fence_a_lost_claim():
    """Three processes write batches over the same executions, each batch locking
    them in a shuffled order of records; one process holds a claim lost meanwhile."""
    require_postgres_and_redis()
    assert connection.vendor == "postgresql"
    executions = [started() for _ in range(4)]
    stale = executions[0]
    targets = [{"id": str(e.id), "token": str(e.claim_token)} for e in executions]
    lost = [{**t, "token": str(uuid.uuid4())} if t["id"] == str(stale.id) else t for t in targets]
    name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DEBUG": "1",
        "EXECUTIONS_MAX_LOG_LINES": "100000",
    }
    before = {e.id: len(stored(e)) for e in executions}
    batches = 60
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, json.dumps(t), str(batches)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for t in (targets, targets, lost)
    ]
    counts: dict[str, int] = {}
    for writer in writers:
        out, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0
        for key, value in json.loads(out).items():
            counts[key] = counts.get(key, 0) + value

    for execution in executions:
        events = stored(execution)
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
        writers_of_it = 2 if execution is stale else 3
        assert counts.get(f"{execution.id} {Outcome.RECORDED}") == writers_of_it * batches, counts
        assert len(events) - before[execution.id] == writers_of_it * batches
        assert counts[f"{execution.id} {Outcome.RECORDED}"] == writers_of_it * batches
    assert counts[f"{stale.id} {Outcome.CLAIM_LOST}"] == batches
