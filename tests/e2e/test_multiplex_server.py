"""One /api/v1/ws socket follows 200 running executions on a real daphne."""

import asyncio
import json

import pytest
import websockets

from tests.factories import chain, node

pytestmark = pytest.mark.embedded

EXECUTIONS = 200
WORKFLOW = chain(
    node("begin", "log", message="begin", level="info"),
    node("wait", "delay", seconds=1.5),
    node("end", "log", message="end", level="info"),
)


def headers(server) -> dict:
    return {"Authorization": f"Bearer {server.token}"}


async def follow_all(server, execution_ids: list[str]) -> dict[str, list[dict]]:
    """Every message for each execution on one socket, from the start of each log."""
    streams: dict[str, list[dict]] = {execution_id: [] for execution_id in execution_ids}
    async with websockets.connect(
        f"{server.ws_url}/api/v1/ws", additional_headers=headers(server), max_queue=None
    ) as socket:
        for execution_id in execution_ids:
            await socket.send(
                json.dumps({"type": "subscribe", "execution_id": execution_id, "last_seq": 0})
            )
        ended = 0
        while ended < len(execution_ids):
            message = json.loads(await asyncio.wait_for(socket.recv(), 60))
            assert message["type"] != "error", message
            streams[message["execution_id"]].append(message)
            ended += message["type"] == "unsubscribed"
        # Still open, still answering.
        await socket.send('{"type": "ping"}')
        assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}
    return streams


async def alone(server, execution_id: str) -> list[dict]:
    """What the per-execution socket sends, from the start of the log."""
    url = f"{server.ws_url}/api/v1/ws/executions/{execution_id}?last_seq=0"
    async with websockets.connect(url, additional_headers=headers(server)) as socket:
        messages = [json.loads(frame) async for frame in socket]
    assert socket.close_code == 1000
    return messages


async def test_one_socket_follows_200_executions_as_200_sockets_would(server):
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "w", "definition": WORKFLOW}
    )
    assert status == 201, workflow
    items = [{"workflow_id": workflow["id"], "input_data": {"n": n}} for n in range(EXECUTIONS)]
    status, batch = server.request("POST", "/api/v1/executions/batch", {"items": items})
    assert status == 201, batch
    ids = [result["id"] for result in batch["results"]]

    streams = await follow_all(server, ids)

    for execution_id in ids:
        *stream, unsubscribed = streams[execution_id]
        assert unsubscribed == {
            "type": "unsubscribed",
            "execution_id": execution_id,
            "reason": "ended",
        }
        # Gap-free from seq 1, ending with the terminal event.
        assert [m["seq"] for m in stream] == list(range(1, len(stream) + 1))
        assert stream[-1]["type"] == "status" and stream[-1]["status"] == "completed"
    # Identical to what the per-execution socket sends for each of them.
    for start in range(0, EXECUTIONS, 50):
        chunk = ids[start : start + 50]
        singles = await asyncio.gather(*(alone(server, execution_id) for execution_id in chunk))
        for execution_id, single in zip(chunk, singles, strict=True):
            assert streams[execution_id][:-1] == single
