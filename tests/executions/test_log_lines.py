"""Log lines: the frequent event, recorded in one statement on PostgreSQL and
under the row lock elsewhere, with the same guarantees either way."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction

import realtime.signals
from executions import services
from executions.exceptions import ClaimLost, InvalidTransition
from executions.models import Execution, ExecutionEvent
from tests.factories import make_execution, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pushed(monkeypatch) -> list[dict]:
    """The messages the events' signal publishes, in order."""
    messages: list[dict] = []
    monkeypatch.setattr(
        realtime.signals,
        "publish_many",
        lambda published: messages.extend(
            message for _, message in published if message["type"] == "execution.event"
        ),
    )
    return messages


@pytest.fixture
def running(no_dispatch):
    execution = make_execution(make_user())
    return services.execution_start(execution_id=execution.id, runner="w1")


def log(execution, message: str, **kwargs) -> bool:
    return services.execution_log(
        execution_id=execution.id, node_id="n", level="info", message=message, **kwargs
    )


def events(execution) -> list[ExecutionEvent]:
    return list(ExecutionEvent.objects.filter(execution=execution).order_by("seq"))


def test_a_line_gets_the_next_seq_and_is_pushed_after_commit(running, pushed):
    before = running.last_seq
    log(running, "tick", claim_token=running.claim_token)
    running.refresh_from_db()
    event = events(running)[-1]
    assert (event.seq, event.type, running.last_seq) == (before + 1, "log", before + 1)
    assert event.data == {"node_id": "n", "level": "info", "message": "tick"}
    assert running.last_event_at == event.created_at
    message = pushed[-1]["event"]
    assert (message["seq"], message["message"]) == (before + 1, "tick")
    assert message["execution_id"] == str(running.id)


def test_nothing_is_recorded_or_pushed_when_the_outer_transaction_rolls_back(running, pushed):
    before = running.last_seq
    with pytest.raises(RuntimeError), transaction.atomic():
        log(running, "undone")
        raise RuntimeError("roll back")
    running.refresh_from_db()
    assert running.last_seq == before
    assert [e.seq for e in events(running)] == list(range(1, before + 1))
    assert all(m["event"].get("message") != "undone" for m in pushed)


def test_an_ended_execution_refuses_a_line_and_keeps_its_log(running, pushed):
    services.execution_complete(execution_id=running.id, result=None)
    running.refresh_from_db()
    with pytest.raises(InvalidTransition, match="has ended"):
        log(running, "late")
    assert events(running)[-1].seq == running.last_seq
    assert events(running)[-1].data["status"] == "completed"


def test_a_runner_that_lost_its_claim_records_nothing(running):
    before = running.last_seq
    with pytest.raises(ClaimLost):
        log(running, "stale", claim_token=uuid.uuid4())
    running.refresh_from_db()
    assert running.last_seq == before


def test_a_missing_execution_is_an_error():
    with pytest.raises(Execution.DoesNotExist):
        log(Execution(id=uuid.uuid4()), "nowhere")


def test_a_line_is_never_dated_before_the_previous_event(running):
    ahead = running.last_event_at + timedelta(seconds=5)
    Execution.objects.filter(id=running.id).update(last_event_at=ahead)
    log(running, "after")
    assert events(running)[-1].created_at == ahead


def test_concurrent_lines_get_gap_free_seqs_in_time_order(running):
    before = running.last_seq
    threads, lines_each = 4, 25
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(lines_each):
                log(running, f"{worker}-{i}", claim_token=running.claim_token)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    recorded = events(running)
    assert [e.seq for e in recorded] == list(range(1, before + threads * lines_each + 1))
    times = [e.created_at for e in recorded]
    assert times == sorted(times)
    for w in range(threads):
        lines = [e.data.get("message", "") for e in recorded]
        mine = [line for line in lines if line.startswith(f"{w}-")]
        assert mine == [f"{w}-{i}" for i in range(lines_each)]


def cut_warnings(execution) -> list[dict]:
    return [
        e.data
        for e in events(execution)
        if e.type == "log" and e.data["message"].startswith("The log was cut")
    ]


def test_past_the_line_limit_one_warning_takes_the_next_line_and_later_ones_are_dropped(
    running, pushed, settings
):
    settings.EXECUTIONS_MAX_LOG_LINES = 2
    token = running.claim_token
    kept = [
        services.execution_log(
            execution_id=running.id, node_id="n", level="info", message=f"l{i}", claim_token=token
        )
        for i in range(1, 5)
    ]
    services.execution_progress(execution_id=running.id, progress=50, claim_token=token)

    assert kept == [True, True, False, False]
    recorded = events(running)
    lines = [e.data["message"] for e in recorded if e.type == "log" and e.data["node_id"] == "n"]
    assert lines == ["l1", "l2"]
    assert cut_warnings(running) == [
        {
            "node_id": None,
            "level": "warning",
            "message": "The log was cut at 2 lines (EXECUTIONS_MAX_LOG_LINES): later lines are "
            "not recorded. Log less, or raise the limit.",
        }
    ]
    assert recorded[-1].type == "status" and recorded[-1].data["progress"] == 50
    assert [e.seq for e in recorded] == list(range(1, len(recorded) + 1))
    assert [m["event"]["seq"] for m in pushed][-4:] == [e.seq for e in recorded][-4:]
    running.refresh_from_db()
    assert (running.log_lines, running.log_cut) == (3, True)


def test_past_the_byte_limit_the_line_that_does_not_fit_is_cut(running, settings):
    settings.EXECUTIONS_MAX_LOG_BYTES = 10

    kept = [log(running, text) for text in ("12345", "é1234", "1")]

    # "é1234" is 6 bytes: 11 in all, one past the limit.
    assert kept == [True, False, False]
    assert [e.data["message"] for e in events(running) if e.data.get("node_id") == "n"] == ["12345"]
    assert [w["message"].split(":")[0] for w in cut_warnings(running)] == [
        "The log was cut at 10 bytes of messages (EXECUTIONS_MAX_LOG_BYTES)"
    ]


def test_concurrent_lines_past_the_limit_leave_exactly_one_warning(running, settings):
    settings.EXECUTIONS_MAX_LOG_LINES = 30
    before = running.last_seq
    threads, lines_each = 4, 15
    kept: list[bool] = []

    def write(worker: int) -> None:
        try:
            for i in range(lines_each):
                kept.append(log(running, f"{worker}-{i}", claim_token=running.claim_token))
        finally:
            connection.close()

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    recorded = events(running)
    assert kept.count(True) == 30
    assert len(cut_warnings(running)) == 1
    assert [e.seq for e in recorded] == list(range(1, before + 30 + 2))
    assert recorded[-1].data == cut_warnings(running)[0]


def test_a_long_line_is_stored_cut_and_counts_as_cut(running, pushed, settings):
    settings.EXECUTIONS_EVENT_TEXT_LIMIT = 10
    kept = "x" * 10 + "…"
    settings.EXECUTIONS_MAX_LOG_BYTES = len(kept.encode())  # the cut line fits; the whole would not
    assert log(running, "x" * 1000, claim_token=running.claim_token) is True
    running.refresh_from_db()
    cut = {"message": kept, "message_truncated": True, "message_size": 1000}
    assert events(running)[-1].data == {"node_id": "n", "level": "info", **cut}
    assert (running.log_lines, running.log_bytes, running.log_cut) == (1, len(kept.encode()), False)
    assert {k: pushed[-1]["event"][k] for k in cut} == cut
