import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from project.asgi import application
from tests.factories import chain, make_execution, make_token, make_user, make_workflow, node

pytestmark = pytest.mark.django_db(transaction=True)


async def test_watch_execution_to_completion():
    user = await database_sync_to_async(make_user)()
    token = await database_sync_to_async(make_token)(user)
    workflow = await database_sync_to_async(make_workflow)(
        user, chain(node("wait", "delay", seconds=0.2), node("pick", "transform", expression="x"))
    )
    execution = await database_sync_to_async(make_execution)(user, workflow, {"x": 5})
    communicator = WebsocketCommunicator(
        application,
        f"/api/v1/ws/executions/{execution.id}",
        headers=[(b"authorization", f"Bearer {token}".encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    messages = []
    while True:
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            assert output.get("code") == 1000
            break
        import json

        messages.append(json.loads(output["text"]))
    assert messages[-1]["status"] == "completed"
    assert messages[-1]["result"] == 5
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(seqs[0], seqs[-1] + 1))
