"""Hostile JMESPath expressions on the real server: they fail their own node,
and nothing else in the process waits for them.

In the embedded mode executions run on a background loop of the server
process; an expression evaluated there (or a huge result serialized there)
would hold the interpreter, and with it every socket, request and run.
"""

import asyncio
import json
import time
from pathlib import Path

import pytest
import websockets

from tests.e2e.test_server import collect
from tests.factories import chain, node

pytestmark = pytest.mark.embedded

# A ping's round trip while a hostile expression runs, at most.
PING_BOUND = 0.2
DELAY = 1.0


def doubled(times: int) -> str:
    return " | ".join(["[@,@]"] * times)


# 2**22 leaves by shared references: 16 MiB of JSON from 154 characters.
OUTPUT_BOMB = doubled(22)
# Compares two distinct trees of 2**32 equal leaves: hours of CPU in C code.
CPU_BOMB = f"{{p: {doubled(32)}, q: {doubled(32)}}} | p == q"


def start(server, definition: dict, input_data: dict | None = None) -> str:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "w", "definition": definition}
    )
    assert status == 201, workflow
    body = {"workflow_id": workflow["id"], "input_data": input_data or {}}
    status, execution = server.request("POST", "/api/v1/executions", body)
    assert status == 201, execution
    return execution["id"]


async def ping(socket) -> float:
    """One application ping's round trip, in seconds."""
    started = time.monotonic()
    await socket.send(json.dumps({"type": "ping"}))
    while json.loads(await socket.recv()) != {"type": "pong"}:
        pass
    return time.monotonic() - started


async def timed_delay(server) -> float:
    """Seconds from starting a one-delay execution to the end of its stream."""
    started = time.monotonic()
    definition = chain(node("wait", "delay", seconds=DELAY))
    messages, _ = await collect(server, await asyncio.to_thread(start, server, definition))
    assert messages[-1]["status"] == "completed"
    return time.monotonic() - started


async def run_hostile(server) -> list[tuple[list[dict], int]]:
    """Start an output bomb and a CPU bomb; the streams of both, to their ends."""
    executions = [
        await asyncio.to_thread(start, server, chain(node(name, "transform", expression=e)), {})
        for name, e in (("out", OUTPUT_BOMB), ("cpu", CPU_BOMB))
    ]
    return await asyncio.gather(*(collect(server, execution) for execution in executions))


async def pings_until(socket, done: asyncio.Future) -> list[float]:
    """Round trips of pings sent one after another until ``done``, or one that took 10 s."""
    rounds = []
    while not done.done():
        try:
            rounds.append(await asyncio.wait_for(ping(socket), 10))
        except TimeoutError:
            rounds.append(10.0)
            break
        await asyncio.sleep(0.05)
    return rounds


def evaluator_children(pid: int) -> list[int]:
    children = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        children += [int(child) for child in path.read_text().split()]
    return [
        child
        for child in children
        if b"expression_evaluator" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def exited(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_hostile_expressions_leave_sockets_and_other_executions_on_time(server):
    watched = start(server, chain(node("wait", "delay", seconds=120)))
    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"{server.ws_url}/api/v1/ws/executions/{watched}"
    async with websockets.connect(url, additional_headers=headers) as socket:
        baseline_pings = [await ping(socket) for _ in range(5)]
        baseline = await timed_delay(server)

        ended = asyncio.ensure_future(asyncio.wait_for(run_hostile(server), 30))
        other = asyncio.ensure_future(timed_delay(server))
        rounds = await pings_until(socket, ended)
        assert max(rounds) < PING_BOUND, (rounds, baseline_pings)
        during = await other
        results = await ended

    assert during < baseline * 1.5 + 0.5, (during, baseline)
    errors = [messages[-1]["error"] for messages, _ in results]
    assert [messages[-1]["status"] for messages, _ in results] == ["failed", "failed"]
    assert "(EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES)" in errors[0]
    assert "(EXECUTIONS_EXPRESSION_TIMEOUT)" in errors[1]
    # The CPU bound is 2 s: the pings went on while the expression ran.
    assert sum(rounds) + 0.05 * len(rounds) >= 1.5, rounds


async def test_evaluators_end_with_a_server_that_is_killed(server):
    children: list[int] = []
    # The first is busy for seconds, so the second execution starts another.
    for wanted, expression in enumerate((CPU_BOMB, "s"), start=1):
        start(server, chain(node("t", "transform", expression=expression)), {"s": "x"})
        deadline = time.monotonic() + 10
        while len(children := evaluator_children(server.pid)) < wanted:
            assert time.monotonic() < deadline, "no evaluator started"
            await asyncio.sleep(0.05)

    server.stop(crash=True)

    # The idle one reads the end of its input; the busy one reaches its CPU bound.
    deadline = time.monotonic() + 10
    while not all(exited(child) for child in children):
        assert time.monotonic() < deadline, "an evaluator outlived its server"
        await asyncio.sleep(0.05)
