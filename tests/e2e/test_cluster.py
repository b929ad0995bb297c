"""Two ASGI servers and two workers sharing PostgreSQL and Redis."""

import asyncio
import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import websockets

from tests.factories import chain, node

pytestmark = pytest.mark.services

STEPS = chain(
    node("hello", "log", message="hello", level="info"),
    node("wait", "delay", seconds=1.5),
    node("pick", "transform", expression="n"),
)


async def collect(
    server, execution_id: str, query: str = "", until=None
) -> tuple[list[dict], int | None]:
    """Messages of one socket until it closes (or ``until`` matches), and the close code."""
    url = f"{server.ws_url}/api/v1/ws/executions/{execution_id}{query}"
    headers = {"Authorization": f"Bearer {server.token}"}
    messages = []
    async with websockets.connect(url, additional_headers=headers) as socket:
        async for frame in socket:
            messages.append(json.loads(frame))
            if until and until(messages[-1]):
                return messages, None
    return messages, socket.close_code


def start(server, definition: dict, input_data: dict | None = None, *, retry=False) -> str:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "w", "definition": definition}
    )
    assert status == 201, workflow
    if retry:
        server.request(
            "PATCH", f"/api/v1/workflows/{workflow['id']}", {"retry_on_worker_loss": True}
        )
    status, execution = server.request(
        "POST",
        "/api/v1/executions",
        {"workflow_id": workflow["id"], "input_data": input_data or {}},
    )
    assert status == 201, execution
    return execution["id"]


def query(cluster, sql: str, *args):
    with psycopg.connect(cluster.env["DATABASE_URL"]) as connection:
        return connection.execute(sql, args).fetchall()


async def test_subscribers_on_both_servers_see_a_workers_stream(cluster):
    server_a, server_b = cluster.servers
    execution_id = start(server_a, STEPS, {"n": 42})
    (on_a, code_a), (on_b, code_b) = await asyncio.gather(
        collect(server_a, execution_id, "?last_seq=0"),
        collect(server_b, execution_id, "?last_seq=0"),
    )
    assert code_a == code_b == 1000
    assert on_a == on_b
    assert [m["seq"] for m in on_a] == list(range(1, len(on_a) + 1))
    assert on_a[-1]["status"] == "completed" and on_a[-1]["result"] == 42
    [(claimed_by,)] = query(cluster, "SELECT claimed_by FROM executions_execution")
    worker_pids = {str(w.pid) for w in cluster.workers}
    assert claimed_by.rsplit(":", 1)[1] in worker_pids


async def test_a_killed_worker_ends_in_a_terminal_event_within_lease_plus_5_s(cluster):
    server = cluster.servers[0]
    execution_id = start(server, chain(node("wait", "delay", seconds=60)))
    running, _ = await collect(
        server,
        execution_id,
        "?last_seq=0",
        until=lambda m: m["type"] == "node" and m["status"] == "running",
    )
    [(claimed_by,)] = query(cluster, "SELECT claimed_by FROM executions_execution")
    victim = next(w for w in cluster.workers if claimed_by.endswith(f":{w.pid}"))
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    rest, code = await asyncio.wait_for(
        collect(server, execution_id, f"?last_seq={running[-1]['seq']}"), 20
    )
    assert time.monotonic() - killed < 3 + 5
    assert code == 1000
    assert rest[-1]["status"] == "failed"
    assert "stopped renewing its claim; the execution was lost" in rest[-1]["error"]
    assert ("wait", "cancelled") in [
        (m["node_id"], m["status"]) for m in rest if m["type"] == "node"
    ]


async def test_a_killed_worker_reruns_a_repeatable_workflow_elsewhere(cluster):
    server = cluster.servers[0]
    execution_id = start(server, chain(node("wait", "delay", seconds=3)), retry=True)
    first, _ = await collect(
        server,
        execution_id,
        "?last_seq=0",
        until=lambda m: m["type"] == "node" and m["status"] == "running",
    )
    [(claimed_by,)] = query(cluster, "SELECT claimed_by FROM executions_execution")
    victim = next(w for w in cluster.workers if claimed_by.endswith(f":{w.pid}"))
    victim.send_signal(signal.SIGKILL)
    rest, code = await asyncio.wait_for(
        collect(server, execution_id, f"?last_seq={first[-1]['seq']}"), 30
    )
    assert code == 1000 and rest[-1]["status"] == "completed"
    [(runs, final_claim)] = query(cluster, "SELECT runs, claimed_by FROM executions_execution")
    assert runs == 2 and final_claim != claimed_by


async def test_redis_restart_mid_run_loses_nothing_for_a_resuming_client(cluster):
    server = cluster.servers[1]
    execution_id = start(
        server,
        chain(
            node("before", "delay", seconds=1),
            node("during", "delay", seconds=3),
            node("after", "log", message="after the restart", level="info"),
        ),
    )
    seen, _ = await collect(
        server,
        execution_id,
        "?last_seq=0",
        until=lambda m: (
            m["type"] == "node" and m["node_id"] == "during" and m["status"] == "running"
        ),
    )
    cluster.redis.restart()
    rest, code = await asyncio.wait_for(
        collect(server, execution_id, f"?last_seq={seen[-1]['seq']}"), 30
    )
    assert code == 1000
    stream = seen + rest
    assert [m["seq"] for m in stream] == list(range(1, len(stream) + 1))
    assert stream[-1]["status"] == "completed"
    assert any(m["type"] == "log" and m["message"] == "after the restart" for m in stream)
    # The servers kept serving and re-subscribed: a fresh live watcher gets live events.
    execution_id = start(server, chain(node("wait", "delay", seconds=1)))
    live, code = await asyncio.wait_for(collect(cluster.servers[0], execution_id), 30)
    assert code == 1000 and live[-1]["status"] == "completed"


async def test_two_hundred_executions_across_two_workers_each_run_once(cluster):
    server = cluster.servers[0]
    _, workflow = server.request(
        "POST",
        "/api/v1/workflows",
        {"name": "quick", "definition": chain(node("wait", "delay", seconds=0.5))},
    )
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(8) as pool:
        created = await asyncio.gather(
            *[
                loop.run_in_executor(
                    pool,
                    server.request,
                    "POST",
                    "/api/v1/executions",
                    {"workflow_id": workflow["id"]},
                )
                for _ in range(200)
            ]
        )
    ids = [body["id"] for _, body in created]
    results = await asyncio.wait_for(
        asyncio.gather(
            *[collect(cluster.servers[i % 2], e, "?last_seq=0") for i, e in enumerate(ids)]
        ),
        120,
    )
    assert all(code == 1000 and messages[-1]["status"] == "completed" for messages, code in results)
    rows = query(
        cluster,
        "SELECT runs, claimed_by, (SELECT count(*) FROM executions_executionevent e "
        "WHERE e.execution_id = x.id AND e.data->>'message' LIKE 'Execution started%%') "
        "FROM executions_execution x WHERE status = 'completed' AND x.workflow_id = %s",
        workflow["id"],
    )
    assert len(rows) == 200
    assert {(runs, starts) for runs, _, starts in rows} == {(1, 1)}
    by_worker = {claimed.rsplit(":", 1)[1] for _, claimed, _ in rows}
    assert by_worker == {str(w.pid) for w in cluster.workers}
