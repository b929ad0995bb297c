"""The real ASGI server (daphne, a subprocess) watched by real WebSocket clients."""

import asyncio
import json
import sqlite3

import pytest
import websockets

from tests.factories import node

pytestmark = pytest.mark.embedded

BRANCHES = {
    "nodes": [
        node("start", "log", message="begin", level="info"),
        node("left", "delay", seconds=0.3),
        node("right", "delay", seconds=0.1),
        node("note", "log", message="right done", level="warning"),
        node("join", "transform", expression="{left: left.n, right: note.n}"),
    ],
    "edges": [
        {"source": "start", "target": "left"},
        {"source": "start", "target": "right"},
        {"source": "right", "target": "note"},
        {"source": "left", "target": "join"},
        {"source": "note", "target": "join"},
    ],
}


async def collect(server, execution_id: str, query: str = "") -> tuple[list[dict], int]:
    """Every message of one stream until the server closes it, and the close code.

    Like any client, it resumes with ``last_seq`` when a connection drops without a
    close (it happens under load: the server drops a socket whose close is not
    answered within its close-handshake timeout); the stream must still be whole.
    """
    headers = {"Authorization": f"Bearer {server.token}"}
    messages: list[dict] = []
    for _ in range(3):
        url = f"{server.ws_url}/api/v1/ws/executions/{execution_id}{query}"
        try:
            async with websockets.connect(url, additional_headers=headers) as socket:
                async for frame in socket:
                    messages.append(json.loads(frame))
            return messages, socket.close_code
        except websockets.ConnectionClosedError:
            query = f"?last_seq={max([m['seq'] for m in messages], default=0)}"
    raise AssertionError(f"the stream of {execution_id} kept dropping")


def stored_events(server, execution_id: str) -> list[dict]:
    with sqlite3.connect(server.database) as db:
        rows = db.execute(
            "SELECT seq, type, data FROM executions_executionevent "
            "WHERE execution_id = ? ORDER BY seq",
            [execution_id.replace("-", "")],
        ).fetchall()
    return [{"seq": seq, "type": kind, **json.loads(data)} for seq, kind, data in rows]


def create_execution(server, input_data: dict) -> dict:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "branches", "definition": BRANCHES}
    )
    assert status == 201, workflow
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": input_data}
    )
    assert status == 201, execution
    return execution


async def test_watch_an_execution_to_the_end(server):
    execution = create_execution(server, {"n": 7})
    messages, code = await collect(server, execution["id"], "?last_seq=0")

    assert code == 1000
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    statuses = [m["status"] for m in messages if m["type"] == "status"]
    assert statuses[0] == "pending" and statuses[-1] == "completed"
    assert set(statuses[1:-1]) == {"running"}
    progress = [m["progress"] for m in messages if m["type"] == "status"]
    assert progress == sorted(progress) and progress[-1] == 100
    assert messages[-1]["result"] == {"left": 7, "right": 7}
    node_logs = [m for m in messages if m["type"] == "log" and m["node_id"]]
    assert [(m["node_id"], m["message"]) for m in node_logs] == [
        ("start", "begin"),
        ("note", "right done"),
    ]
    assert [{k: m[k] for k in ("seq", "type")} for m in messages] == [
        {"seq": e["seq"], "type": e["type"]} for e in stored_events(server, execution["id"])
    ]

    # Resuming a finished execution replays exactly what came after last_seq.
    replay, code = await collect(server, execution["id"], "?last_seq=4")
    assert code == 1000
    assert replay == messages[4:]
    nothing, code = await collect(server, execution["id"], f"?last_seq={len(messages)}")
    assert (nothing, code) == ([], 1000)


async def test_twenty_executions_with_several_subscribers_each(server):
    executions = [create_execution(server, {"n": i}) for i in range(20)]
    watchers = [
        collect(server, execution["id"], query)
        for execution in executions
        for query in ("?last_seq=0", "?last_seq=0", "")
    ]
    results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=60)

    for index, execution in enumerate(executions):
        full_a, full_b, live = (results[index * 3 + k] for k in range(3))
        stored = stored_events(server, execution["id"])
        for messages, code in (full_a, full_b, live):
            assert code == 1000
            seqs = [m["seq"] for m in messages]
            assert seqs == list(range(seqs[0], stored[-1]["seq"] + 1)), "gap or duplicate"
            assert messages[-1]["status"] == "completed"
            assert messages[-1]["result"] == {"left": index, "right": index}
        assert full_a[0] == full_b[0]
        assert [m["seq"] for m in full_a[0]] == [e["seq"] for e in stored]
        # The live subscriber's stream is the tail of the same stream.
        tail_start = live[0][0]["seq"]
        assert live[0][1:] == full_a[0][tail_start:]
    assert "database is locked" not in server.log.read_text()
