"""One embedded server runs 200 waiting executions at once and stays responsive."""

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import websockets

from tests.factories import chain, node

pytestmark = pytest.mark.embedded

EXECUTIONS = 200
WAITING = 7.0
WAITS = chain(
    node("first", "delay", seconds=5),
    node("second", "delay", seconds=1),
    node("third", "delay", seconds=1),
)
# The same nodes without the waiting: one execution's writes, the baseline.
NO_WAITS = chain(
    node("first", "delay", seconds=0),
    node("second", "delay", seconds=0),
    node("third", "delay", seconds=0),
)


def recorded_at(message: dict) -> float:
    return datetime.fromisoformat(message["timestamp"]).timestamp()


async def watch(server, execution_id: str, lateness: list[float]) -> list[dict]:
    url = f"{server.ws_url}/api/v1/ws/executions/{execution_id}?last_seq=0"
    headers = {"Authorization": f"Bearer {server.token}"}
    messages = []
    async with websockets.connect(url, additional_headers=headers, open_timeout=30) as socket:
        connected = time.time()
        async for frame in socket:
            messages.append(json.loads(frame))
            if recorded_at(messages[-1]) > connected:
                lateness.append(time.time() - recorded_at(messages[-1]))
    assert socket.close_code == 1000
    return messages


async def ping_while(server, execution_id: str, stop: asyncio.Event, round_trips: list[float]):
    url = f"{server.ws_url}/api/v1/ws/executions/{execution_id}"
    headers = {"Authorization": f"Bearer {server.token}"}
    async with websockets.connect(url, additional_headers=headers) as socket:
        await socket.recv()
        while not stop.is_set():
            sent = time.monotonic()
            await socket.send('{"type": "ping"}')
            while json.loads(await socket.recv())["type"] != "pong":
                pass
            round_trips.append(time.monotonic() - sent)
            await asyncio.sleep(0.1)


async def lone_execution_time(server) -> float:
    """How long one execution of the same nodes takes on this machine without waiting."""
    _, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "no waits", "definition": NO_WAITS}
    )
    times = []
    for _ in range(3):
        _, body = server.request("POST", "/api/v1/executions", {"workflow_id": workflow["id"]})
        messages = await watch(server, body["id"], [])
        times.append(messages[-1]["execution_time"])
    return sorted(times)[1]


async def test_two_hundred_waiting_executions_in_one_process(server):
    baseline = await lone_execution_time(server)
    _, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "waits", "definition": WAITS}
    )
    _, slow = server.request(
        "POST",
        "/api/v1/workflows",
        {"name": "slow", "definition": chain(node("w", "delay", seconds=60))},
    )
    _, probe = server.request("POST", "/api/v1/executions", {"workflow_id": slow["id"]})
    started = time.monotonic()
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
                for _ in range(EXECUTIONS)
            ]
        )
    assert [status for status, _ in created] == [201] * EXECUTIONS
    stop, round_trips, lateness = asyncio.Event(), [], []
    pinger = asyncio.create_task(ping_while(server, probe["id"], stop, round_trips))
    streams = await asyncio.wait_for(
        asyncio.gather(*[watch(server, body["id"], lateness) for _, body in created]), 60
    )
    elapsed = time.monotonic() - started
    stop.set()
    await pinger

    # 7 s of waiting; the rest is 200 executions' writes queueing for SQLite's
    # one writer when their delays end together: at most the 200 lone
    # executions' writes one after another, twice over for the contention, on
    # whatever machine this runs (a thread per waiting node took minutes).
    queued_writes = 2 * EXECUTIONS * baseline
    for messages in streams:
        assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
        assert messages[-1]["status"] == "completed"
        assert WAITING - 0.1 < messages[-1]["execution_time"] < WAITING + queued_writes, baseline
    assert elapsed < 2 * WAITING + queued_writes + 10, (elapsed, baseline)
    lateness.sort()
    assert lateness[len(lateness) * 99 // 100] < 1.0, lateness[-10:]
    assert max(round_trips) < 1.0, sorted(round_trips)[-5:]
    assert len(round_trips) > 20
