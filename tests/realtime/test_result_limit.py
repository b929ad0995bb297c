"""A long result is cut in status events, stored and sent alike; REST keeps it whole."""

import json
import uuid

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from executions.engine.runner import run_execution
from executions.models import ExecutionEvent
from executions.wire import event_message
from tests.conftest import bearer_client
from tests.factories import chain, make_execution, make_workflow, node
from tests.realtime.helpers import bearer, open_socket, path_for, receive_until_close, record

pytestmark = pytest.mark.django_db(transaction=True)

RESULT = {"text": "é" * 50}
TEXT = json.dumps(RESULT)
LIMIT = 40


@pytest.fixture
def finished(user, no_dispatch, settings):
    """A completed execution whose result is longer than the limit, as JSON."""
    settings.EXECUTIONS_EVENT_RESULT_LIMIT = LIMIT

    async def finish():
        definition = chain(node("pass", "delay", seconds=0))
        workflow = await record(make_workflow, owner=user, definition=definition)
        execution = await record(make_execution, owner=user, workflow=workflow, input_data=RESULT)
        await run_execution(execution.id)
        return execution

    return finish


CUT = {"result": TEXT[:LIMIT] + "…", "result_truncated": True, "result_size": len(TEXT)}


def rest(user, path: str) -> dict:
    response = bearer_client(user).get(path)
    assert response.status_code == 200
    return response.json()


async def test_the_terminal_event_is_stored_and_sent_cut_and_rest_has_the_whole(
    user, token, finished
):
    execution = await finished()

    stored = await record(
        lambda: ExecutionEvent.objects.filter(execution=execution).order_by("seq").last()
    )
    assert {k: stored.data.get(k) for k in CUT} == CUT
    async with open_socket(path_for(execution.id, "last_seq=0"), bearer(token)) as socket:
        streamed, code = await receive_until_close(socket)
    async with open_socket(path_for(execution.id), bearer(token)) as socket:
        (snapshot,), _ = await receive_until_close(socket)
    events = await database_sync_to_async(rest)(
        user, f"/api/v1/executions/{execution.id}/events?limit=1000"
    )
    detail = await database_sync_to_async(rest)(user, f"/api/v1/executions/{execution.id}")

    assert code == 1000
    terminal = streamed[-1]
    assert (terminal["status"], terminal["progress"]) == ("completed", 100)
    assert {k: terminal[k] for k in CUT} == CUT
    assert {k: snapshot[k] for k in CUT} == CUT
    assert events["results"] == streamed
    assert detail["result"] == RESULT


async def test_a_result_within_the_limit_is_sent_whole_without_a_marker(
    user, token, finished, settings
):
    execution = await finished()
    settings.EXECUTIONS_EVENT_RESULT_LIMIT = len(TEXT)

    async with open_socket(path_for(execution.id), bearer(token)) as socket:
        (snapshot,), _ = await receive_until_close(socket)

    assert snapshot["result"] == RESULT
    assert "result_truncated" not in snapshot


def test_an_event_stored_with_a_whole_long_result_is_sent_cut(settings):
    settings.EXECUTIONS_EVENT_RESULT_LIMIT = LIMIT
    data = {"status": "completed", "progress": 100, "message": "m", "result": RESULT}
    event = ExecutionEvent(
        execution_id=uuid.uuid4(), seq=3, type="status", data=data, created_at=timezone.now()
    )

    message = event_message(event)

    assert {k: message[k] for k in CUT} == CUT
    assert message["status"] == "completed"
