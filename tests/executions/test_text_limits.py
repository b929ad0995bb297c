"""Each text of an event (log message, node and execution error, status message)
is cut to EXECUTIONS_EVENT_TEXT_LIMIT, stored and sent alike, with a marker and
its full length; REST keeps a node's and an execution's error up to
EXECUTIONS_MAX_ERROR_CHARS."""

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

import tests.executions.nodes  # noqa: F401  registers the test node types
from executions import services
from executions.models import Execution, ExecutionEvent, ExecutionStatus
from executions.services.eventlog import check_text_limits
from executions.wire import event_message
from tests.conftest import bearer_client
from tests.executions.engine_helpers import run
from tests.factories import chain, make_execution, make_user, node

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]

SIZE = 2_000_000  # characters ("é": 4 MB of UTF-8), over the 1 MiB frames clients take
LIMIT = 8192  # EXECUTIONS_EVENT_TEXT_LIMIT's default
TEXT = "é" * SIZE


def cut(name: str, text: str, limit: int = LIMIT) -> dict:
    return {name: text[:limit] + "…", f"{name}_truncated": True, f"{name}_size": len(text)}


def rest(execution: Execution) -> dict:
    response = bearer_client(execution.owner).get(f"/api/v1/executions/{execution.id}")
    assert response.status_code == 200
    return response.json()


async def test_a_long_log_line_is_stored_and_sent_cut_and_counted_as_cut():
    execution, events = await run(chain(node("loud", "test_loud", size=SIZE, then="log")))

    assert execution.status == ExecutionStatus.COMPLETED
    (line,) = [e for e in events if e["type"] == "log" and e["node_id"] == "loud"]
    assert {k: line[k] for k in ("node_id", "level")} == {"node_id": "loud", "level": "info"}
    assert {k: line.get(k) for k in cut("message", TEXT)} == cut("message", TEXT)
    assert execution.log_bytes == len(line["message"].encode())
    sent = await database_sync_to_async(
        lambda: event_message(ExecutionEvent.objects.get(execution=execution, seq=line["seq"]))
    )()
    assert {k: sent[k] for k in cut("message", TEXT)} == cut("message", TEXT)


async def test_a_long_node_error_is_cut_in_events_and_bounded_in_rest(settings):
    settings.EXECUTIONS_MAX_ERROR_CHARS = 100_000
    execution, events = await run(chain(node("loud", "test_loud", size=SIZE, then="fail")))

    assert execution.status == ExecutionStatus.FAILED
    # Stored bounded; the events cut what is stored, and give its length.
    node_error = TEXT[:100_000] + "…"
    error = f"Node 'loud' failed: {TEXT}"[:100_000] + "…"
    (failed,) = [e for e in events if e["type"] == "node" and e["status"] == "failed"]
    assert {k: failed.get(k) for k in cut("error", node_error)} == cut("error", node_error)
    terminal = events[-1]
    assert (terminal["type"], terminal["status"]) == ("status", "failed")
    assert {k: terminal.get(k) for k in cut("error", error)} == cut("error", error)
    detail = await database_sync_to_async(rest)(execution)
    assert detail["error"] == error
    assert detail["nodes"][0]["error"] == node_error


async def test_the_fail_nodes_longest_message_is_cut_in_events_whole_in_rest():
    message = "x" * 10_000  # the fail node's longest message, over the default limit
    execution, events = await run(chain(node("boom", "fail", message=message)))

    (failed,) = [e for e in events if e["type"] == "node" and e["status"] == "failed"]
    assert {k: failed.get(k) for k in cut("error", message)} == cut("error", message)
    assert "error_truncated" in events[-1]
    detail = await database_sync_to_async(rest)(execution)
    assert detail["error"] == f"Node 'boom' failed: {message}"
    assert detail["nodes"][0]["error"] == message


async def test_short_texts_are_sent_whole_without_a_marker():
    _, events = await run(chain(node("boom", "fail", message="kaput")))

    assert events[-1]["error"] == "Node 'boom' failed: kaput"
    assert not [k for e in events for k in e if k.endswith(("_truncated", "_size"))]


def test_a_status_message_is_cut_in_events_and_to_its_column(settings):
    settings.EXECUTIONS_EVENT_TEXT_LIMIT = 10
    execution = make_execution(make_user())
    execution = services.execution_start(execution_id=execution.id, runner="w1")
    services.execution_progress(execution_id=execution.id, message="m" * 600)

    execution.refresh_from_db()
    assert execution.message == "m" * 499 + "…"
    event = ExecutionEvent.objects.filter(execution=execution).order_by("seq").last()
    assert {k: event.data[k] for k in cut("message", execution.message, 10)} == cut(
        "message", execution.message, 10
    )


def test_events_stored_uncut_are_sent_cut(settings):
    execution = make_execution(make_user())
    settings.EXECUTIONS_EVENT_TEXT_LIMIT = 10
    data = {"node_id": None, "level": "info", "message": "y" * 50}
    event = ExecutionEvent(
        execution=execution, seq=99, type="log", data=data, created_at=timezone.now()
    )

    assert {k: event_message(event).get(k) for k in cut("message", "y" * 50, 10)} == cut(
        "message", "y" * 50, 10
    )


def test_a_limit_below_one_character_is_a_system_check_error(settings):
    settings.EXECUTIONS_EVENT_TEXT_LIMIT = 0
    errors = check_text_limits()
    assert [error.id for error in errors] == ["executions.E102"]
    assert "EXECUTIONS_EVENT_TEXT_LIMIT" in errors[0].msg
