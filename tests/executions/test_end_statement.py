"""The end of a run in one statement (PostgreSQL): the same rows and events as
under the row lock, and nothing written when the execution moved on since it
was read."""

import uuid

import pytest

from executions import services
from executions.exceptions import ClaimLost
from executions.models import Execution, ExecutionEvent, NodeRun, NodeStatus
from executions.services import endings
from tests.factories import make_execution, make_user

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_dispatch"),
]

OUTPUT = {"rows": [1, 2, 3], "text": "é"}


def running(claim_token=None) -> Execution:
    """A running execution of two nodes: ``a`` completed, ``b`` running."""
    execution = make_execution(make_user())
    services.execution_start(execution_id=execution.id)
    if claim_token is not None:
        Execution.objects.filter(id=execution.id).update(claim_token=claim_token)
    services.execution_nodes_prepare(
        execution_id=execution.id, nodes=[("a", "log", 1), ("b", "log", 1)]
    )
    for node, status in [("a", NodeStatus.RUNNING), ("a", NodeStatus.COMPLETED)]:
        services.execution_node_update(
            execution_id=execution.id, node_id=node, status=status, attempt=1, output=0
        )
    services.execution_node_update(
        execution_id=execution.id, node_id="b", status=NodeStatus.RUNNING, attempt=1
    )
    return execution


def complete(execution: Execution, **kwargs) -> Execution:
    return services.execution_complete_with_node(
        execution_id=execution.id, node_id="b", output=OUTPUT, result={"b": OUTPUT}, **kwargs
    )


def written(execution: Execution) -> tuple:
    """What the end wrote, without the times that differ from run to run."""
    row = Execution.objects.get(id=execution.id)
    events = []
    for event in ExecutionEvent.objects.filter(execution=execution).order_by("seq"):
        data = {k: v for k, v in event.data.items() if k not in ("duration", "execution_time")}
        if "message" in data:
            data["message"] = data["message"].split(" in ")[0]
        events.append((event.seq, event.type, data))
    nodes = [(n.node_id, n.status, n.output, n.attempts) for n in row.nodes.order_by("position")]
    state = (row.status, row.progress, row.result, row.error, row.last_seq, row.lease_expires_at)
    return state, nodes, events


def test_it_is_one_statement_writing_what_the_locked_path_writes(monkeypatch):
    statements = []
    original = endings.rows_write

    def counted(*args, **kwargs):
        statements.append(kwargs["writes"])
        return original(*args, **kwargs)

    monkeypatch.setattr(endings, "rows_write", counted)
    quick, locked = running(), running()
    complete(quick)
    assert len(statements) == 1
    monkeypatch.setattr(endings, "_complete_in_one_statement", lambda *args: None)
    complete(locked)

    assert written(quick) == written(locked)
    state, nodes, events = written(quick)
    assert state[:3] == ("completed", 100, {"b": OUTPUT})
    assert nodes[1] == ("b", "completed", OUTPUT, 1)
    assert [e[1] for e in events[-2:]] == ["node", "status"]
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    row = Execution.objects.get(id=quick.id)
    node = NodeRun.objects.get(execution=quick, node_id="b")
    last = ExecutionEvent.objects.get(execution=quick, seq=row.last_seq)
    # Ended at the time of the read; each event dated as it was appended after it.
    assert row.finished_at == node.finished_at <= last.created_at == row.last_event_at
    assert row.execution_time == (row.finished_at - row.started_at).total_seconds()
    assert last.data["message"] == f"Completed in {row.execution_time:.2f} s"
    assert node.duration == (node.finished_at - node.started_at).total_seconds()


def test_its_events_are_pushed_with_the_ended_state(monkeypatch):
    pushed = []
    monkeypatch.setattr(
        "realtime.signals.publish_many",
        lambda messages: pushed.extend(message for _, message in messages),
    )
    execution = running()
    pushed.clear()
    complete(execution)
    events = [m["event"] for m in pushed if m["type"] == "execution.event"]
    assert [(e["type"], e.get("status")) for e in events] == [
        ("node", "completed"),
        ("status", "completed"),
    ]
    row = Execution.objects.get(id=execution.id)
    assert [e["seq"] for e in events] == [row.last_seq - 1, row.last_seq]
    announced = [m for m in pushed if m["type"] != "execution.event"]
    assert len(announced) == 1
    assert announced[0]["state"]["status"] == "completed"
    assert announced[0]["state"]["last_seq"] == row.last_seq


def test_an_event_recorded_after_the_read_sends_the_end_down_the_locked_path(monkeypatch):
    execution = running()
    original = endings.rows_write
    outcomes = []

    def log_first(*args, **kwargs):
        services.execution_log(execution_id=execution.id, node_id="b", level="info", message="x")
        outcomes.append(original(*args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(endings, "rows_write", log_first)
    complete(execution)

    assert outcomes == [False]
    events = list(ExecutionEvent.objects.filter(execution=execution).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [(e.type, e.data.get("status")) for e in events[-3:]] == [
        ("log", None),
        ("node", "completed"),
        ("status", "completed"),
    ]
    assert Execution.objects.get(id=execution.id).last_seq == events[-1].seq


def test_a_claim_lost_after_the_read_writes_nothing(monkeypatch):
    claim = uuid.uuid4()
    execution = running(claim_token=claim)
    before = written(execution)
    original = endings.rows_write
    outcomes = []

    def reclaimed(*args, **kwargs):
        Execution.objects.filter(id=execution.id).update(claim_token=uuid.uuid4())
        outcomes.append(original(*args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(endings, "rows_write", reclaimed)
    with pytest.raises(ClaimLost):
        complete(execution, claim_token=claim)

    assert outcomes == [False]
    assert written(execution) == before
