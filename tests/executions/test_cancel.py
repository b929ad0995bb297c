"""Cancellation through the API, watched through the socket."""

import gc
import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from executions.models import Execution, ExecutionEvent
from executions.runners import get_runner
from project.asgi import application
from tests.conftest import bearer_client
from tests.factories import chain, make_execution, make_user, make_workflow, node

pytestmark = pytest.mark.django_db(transaction=True)


async def receive_until(communicator, predicate, timeout=5.0) -> list[dict]:
    """Messages up to and including the first that matches ``predicate``."""
    messages = []
    while True:
        output = await communicator.receive_output(timeout=timeout)
        assert output["type"] == "websocket.send", output
        messages.append(json.loads(output["text"]))
        if predicate(messages[-1]):
            return messages


@database_sync_to_async
def setup(definition):
    user = make_user()
    execution = make_execution(user, make_workflow(user, definition))
    return user, execution


def cancel_over_rest(user, execution_id):
    response = bearer_client(user).post(f"/api/v1/executions/{execution_id}/cancel")
    return response.status_code, response.json()


async def connect(user, execution_id, query=""):
    from tests.factories import make_token

    token = await database_sync_to_async(make_token)(user)
    communicator = WebsocketCommunicator(
        application,
        f"/api/v1/ws/executions/{execution_id}{query}",
        headers=[(b"authorization", f"Bearer {token}".encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.fixture
def server_garbage_collection():
    """The collector tuned as a server process tunes it (executions.runtime): the bound
    below is the delay's reaction to a cancel, not a full collection of the test
    process's heap (over 100 ms here, with every test module's objects loaded)."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("server_garbage_collection")
async def test_cancel_during_delay_stops_within_100_ms_and_closes_the_stream():
    definition = chain(node("wait", "delay", seconds=30), node("after", "log", message="never"))
    user, execution = await setup(definition)
    communicator = await connect(user, execution.id, "?last_seq=0")
    await receive_until(communicator, lambda m: m["type"] == "node" and m["status"] == "running")

    requested = timezone.now()
    status, body = await database_sync_to_async(cancel_over_rest)(user, execution.id)
    assert status == 202 and body["id"] == str(execution.id)
    rest = await receive_until(
        communicator, lambda m: m["type"] == "status" and m["status"] == "cancelled"
    )
    output = await communicator.receive_output(timeout=2)
    assert (output["type"], output["code"]) == ("websocket.close", 1000)

    node_events = [(m["node_id"], m["status"]) for m in rest if m["type"] == "node"]
    assert node_events == [("wait", "cancelled"), ("after", "skipped")]
    stopped = await database_sync_to_async(
        lambda: (
            ExecutionEvent.objects.get(
                execution=execution, type="node", data__status="cancelled"
            ).created_at
        )
    )()
    assert (stopped - requested).total_seconds() < 0.1
    final = rest[-1]
    assert final["progress"] < 100 and final["error"] is None
    assert final["message"].startswith("Cancelled")
    last = await database_sync_to_async(
        lambda: ExecutionEvent.objects.filter(execution=execution).order_by("-seq").first()
    )()
    assert last.seq == final["seq"] and last.data["status"] == "cancelled"


async def test_cancel_a_pending_execution_at_once(no_dispatch):
    user, execution = await setup(chain(node("wait", "delay", seconds=1)))
    status, body = await database_sync_to_async(cancel_over_rest)(user, execution.id)
    assert status == 202 and body["status"] == "cancelled"
    communicator = await connect(user, execution.id)
    snapshot = await receive_until(communicator, lambda m: True)
    assert snapshot[0]["status"] == "cancelled"
    assert (await communicator.receive_output(timeout=2))["code"] == 1000
    refreshed = await database_sync_to_async(Execution.objects.get)(id=execution.id)
    assert refreshed.finished_at is not None and refreshed.execution_time is None


async def test_cancelling_a_finished_execution_is_a_conflict(no_dispatch):
    user, execution = await setup(chain(node("wait", "delay", seconds=1)))
    assert (await database_sync_to_async(cancel_over_rest)(user, execution.id))[0] == 202
    status, body = await database_sync_to_async(cancel_over_rest)(user, execution.id)
    assert status == 409
    assert body == {
        "detail": f"Execution {execution.id} has already ended (cancelled); "
        "there is nothing to cancel."
    }


async def test_cancel_someone_elses_execution_is_not_found(no_dispatch):
    _, execution = await setup(chain(node("wait", "delay", seconds=1)))
    stranger = await database_sync_to_async(make_user)()
    status, _ = await database_sync_to_async(cancel_over_rest)(stranger, execution.id)
    assert status == 404
    refreshed = await database_sync_to_async(Execution.objects.get)(id=execution.id)
    assert refreshed.status == "pending"


async def test_cancel_requested_elsewhere_is_noticed_by_polling(monkeypatch, settings):
    """A runner learns of a cancellation made in another process from the database."""
    settings.EXECUTIONS_CANCEL_POLL_INTERVAL = 0.2
    monkeypatch.setattr(get_runner(), "cancel_notify", lambda execution_id: None)
    user, execution = await setup(chain(node("wait", "delay", seconds=30)))
    communicator = await connect(user, execution.id, "?last_seq=0")
    await receive_until(communicator, lambda m: m["type"] == "node" and m["status"] == "running")
    started = time.monotonic()
    await database_sync_to_async(cancel_over_rest)(user, execution.id)
    await receive_until(
        communicator, lambda m: m.get("status") == "cancelled" and m["type"] == "status"
    )
    assert time.monotonic() - started < 1.5
