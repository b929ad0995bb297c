"""The writes on the push path stay a fixed, small number of statements."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from executions import services
from executions.models import Execution, ExecutionEvent, NodeStatus
from tests.factories import make_execution, make_user, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(no_dispatch):
    """A running execution of one node, ``only``, which has started."""
    execution = make_execution(make_user())
    services.execution_start(execution_id=execution.id)
    services.execution_nodes_prepare(execution_id=execution.id, nodes=[("only", "log", 1)])
    services.execution_node_update(
        execution_id=execution.id, node_id="only", status=NodeStatus.RUNNING, attempt=1
    )
    return execution


def statements(call) -> list[str]:
    """The kinds of the statements ``call`` runs (not BEGIN and COMMIT, which
    only some backends log)."""
    with CaptureQueriesContext(connection) as queries:
        call()
    kinds = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    return [kind for kind in kinds if kind not in ("BEGIN", "COMMIT")]


def test_a_log_line_is_one_statement_on_postgresql_and_two_on_sqlite(running):
    executed = statements(
        lambda: services.execution_log(
            execution_id=running.id, node_id="only", level="info", message="tick"
        )
    )
    if connection.vendor == "postgresql":
        # The execution's new last seq and the event, in one statement.
        assert executed == ["WITH"]
    else:
        # The execution's new last seq (returned), then the event with it.
        assert executed == ["UPDATE", "INSERT"]


def test_the_end_of_a_run_reads_twice_and_writes_four_rows(running):
    executed = statements(
        lambda: services.execution_complete_with_node(
            execution_id=running.id, node_id="only", output=1, result=1
        )
    )
    # The execution and its nodes, read once; the node's result; its event
    # and the terminal status; the execution.
    if connection.vendor == "postgresql":
        # Read without the lock; the four rows in one statement (one_statement).
        assert executed == ["SELECT", "SELECT", "WITH"]
    else:
        assert executed == ["SELECT", "SELECT", "UPDATE", "INSERT", "INSERT", "UPDATE"]
    running.refresh_from_db()
    assert (running.status, running.result, running.progress) == ("completed", 1, 100)


def test_the_writes_of_a_run_neither_read_nor_rewrite_its_definition_copy(running):
    def run_on() -> None:
        services.execution_progress(execution_id=running.id, progress=50, message="half")
        services.execution_node_update(
            execution_id=running.id, node_id="only", status=NodeStatus.FAILED, error="e"
        )
        services.execution_log(execution_id=running.id, node_id=None, level="info", message="m")
        services.execution_complete(execution_id=running.id, result=1)

    with CaptureQueriesContext(connection) as queries:
        run_on()

    # A definition may be large: copying it on every event would cost each write.
    assert queries.captured_queries
    assert not [q["sql"] for q in queries.captured_queries if '"definition"' in q["sql"]]
    running.refresh_from_db()
    assert running.definition == running.workflow.definition


def test_a_create_reads_the_cap_and_the_clock_then_inserts_two_rows(no_dispatch):
    user = make_user()
    workflow = make_workflow(user)

    executed = statements(
        lambda: services.execution_create(owner=user, workflow=workflow, input_data={})
    )

    # The owner's row (locked on PostgreSQL) and their active count; the
    # database's clock; the execution, already at its first event; the event.
    assert executed == ["SELECT", "SELECT", "SELECT", "INSERT", "INSERT"]
    execution = Execution.objects.get()
    event = ExecutionEvent.objects.get(execution=execution)
    assert (execution.last_seq, event.seq) == (1, 1)
    assert execution.last_event_at == event.created_at == execution.dispatched_at
