"""Clients that stop reading, on the real server: closed with 4408, nobody else slowed down,
the server's memory bounded, and they can resume with last_seq."""

import asyncio
import json
import re
import socket
import time
from pathlib import Path

import psutil
import pytest
import websockets

from tests.e2e.conftest import serve
from tests.e2e.test_server import stored_events
from tests.factories import chain, node

BUFFER_LIMIT = 128 * 1024
OUTPUT_SIZE = 20_000  # characters of input, carried by every node's completed event
NODES = 60
# A stream is ~NODES * OUTPUT_SIZE = 1.2 MB, far more than may wait for one socket,
# paced (20 events a second) so that a client that does read keeps up.


def workflow(nodes: int) -> dict:
    return chain(
        node("wait", "delay", seconds=1.5),  # every socket is open before the volume starts
        *[node(f"step{i}", "delay", seconds=0.05) for i in range(nodes)],
    )


SLOW_CLOSE = re.compile(r"Closing a socket that is not reading")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for this module's tests."""
    env = {
        "REALTIME_SEND_BUFFER_BYTES": str(BUFFER_LIMIT),
        "REALTIME_SEND_TIMEOUT": "1",
        "EXECUTIONS_EVENT_OUTPUT_LIMIT": str(OUTPUT_SIZE + 100),
    }
    with serve(tmp_path_factory.mktemp("slow"), env) as running:
        yield running


def slow_closes(server) -> int:
    return len(SLOW_CLOSE.findall(server.log.read_text()))


def start_executions(server, count: int, nodes: int = NODES) -> list[str]:
    status, created = server.request(
        "POST", "/api/v1/workflows", {"name": "bulky", "definition": workflow(nodes)}
    )
    assert status == 201, created
    ids = []
    for _ in range(count):
        status, execution = server.request(
            "POST",
            "/api/v1/executions",
            {"workflow_id": created["id"], "input_data": {"pad": "x" * OUTPUT_SIZE}},
        )
        assert status == 201, execution
        ids.append(execution["id"])
    return ids


def url_of(server, execution_id: str, last_seq: int = 0) -> str:
    return f"{server.ws_url}/api/v1/ws/executions/{execution_id}?last_seq={last_seq}"


async def open_not_reading(server, execution_id: str):
    """A socket whose client never reads: a small kernel buffer, and nothing calls recv()."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    raw.setblocking(False)
    port = int(server.ws_url.rsplit(":", 1)[1])
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
    return await websockets.connect(
        url_of(server, execution_id),
        sock=raw,
        additional_headers={"Authorization": f"Bearer {server.token}"},
        max_queue=4,
        max_size=None,
    )


async def read_all(server, execution_id: str, last_seq: int = 0) -> tuple[list[dict], int]:
    url = url_of(server, execution_id, last_seq)
    headers = {"Authorization": f"Bearer {server.token}"}
    messages = []
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        async for frame in ws:
            messages.append(json.loads(frame))
    return messages, ws.close_code


async def drain(ws) -> tuple[list[dict], int | None]:
    """What a stalled client finds when it reads again, and how its socket ended."""
    messages = []
    try:
        async for frame in ws:
            messages.append(json.loads(frame))
    except websockets.ConnectionClosed:
        pass
    return messages, ws.close_code


def kernel_send_queues(port: int) -> int:
    """Bytes in the kernel send queues of the server's sockets on ``port`` (/proc/net/tcp)."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            total += int(fields[4].split(":")[0], 16)
    return total


async def sample_memory(server, samples: list[tuple[int, int]], stop: asyncio.Event) -> None:
    """(RSS, kernel send queues) of the server, every 50 ms until ``stop``."""
    process = psutil.Process(server.pid)
    port = int(server.ws_url.rsplit(":", 1)[1])
    while not stop.is_set():
        samples.append((process.memory_info().rss, kernel_send_queues(port)))
        await asyncio.sleep(0.05)


def assert_gap_free(messages: list[dict], first: int, last: int) -> None:
    events = [m for m in messages if m["type"] != "error"]
    assert [m["seq"] for m in events] == list(range(first, last + 1))


async def test_fifty_stalled_sockets_do_not_hurt_fifty_readers_nor_grow_memory(server):
    closes_before = slow_closes(server)
    executions = start_executions(server, 2)
    baseline = psutil.Process(server.pid).memory_info().rss
    samples: list[tuple[int, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_memory(server, samples, stop))
    stalled = await asyncio.gather(
        *[open_not_reading(server, executions[i % 2]) for i in range(50)]
    )
    started = time.monotonic()
    readers = await asyncio.wait_for(
        asyncio.gather(*[read_all(server, executions[i % 2]) for i in range(50)]), 60
    )
    elapsed = time.monotonic() - started
    stop.set()
    await sampler

    stored = {e: stored_events(server, e) for e in executions}
    for i, (messages, code) in enumerate(readers):
        log = stored[executions[i % 2]]
        assert code == 1000
        assert_gap_free(messages, 1, log[-1]["seq"])
        assert messages[-1]["status"] == "completed"
    streamed = sum(len(json.dumps(m)) for m in readers[0][0])
    assert streamed > 8 * BUFFER_LIMIT  # so a stalled socket really had to be cut off
    assert elapsed < 20, elapsed  # the workflow takes ~5 s; nobody waited for the stalled
    assert slow_closes(server) - closes_before == 50
    # Unbounded, the stalled sockets would hold 50 x ~1.2 MB, in the kernel's
    # send queues first; bounded, each holds at most the limit plus a message.
    rss_growth = max(rss for rss, _ in samples) - baseline
    queued = max(queues for _, queues in samples)
    assert queued < 50 * (BUFFER_LIMIT + 2 * OUTPUT_SIZE), f"{queued / 2**20:.1f} MiB queued"
    assert rss_growth < 40 * 2**20, f"RSS grew by {rss_growth / 2**20:.1f} MiB"
    print(
        f"readers done in {elapsed:.1f} s; peak kernel queues {queued / 2**20:.1f} MiB; "
        f"RSS growth {rss_growth / 2**20:.1f} MiB"
    )

    # Each stalled client gets a gap-free start of its stream, and the rest by resuming.
    async def resume(ws, execution_id: str) -> None:
        head, code = await drain(ws)
        assert code in (4408, 1006, None), code  # 1006/None: dropped before it read the close
        last = head_last = max([m["seq"] for m in head if "seq" in m], default=0)
        assert_gap_free(head, 1, last)
        # A client that resumes is itself cut off again (4408) if it reads too
        # slowly, as 50 at once in one client process on a loaded machine may;
        # like any client it resumes again from what it got.
        rest: list[dict] = []
        for _ in range(5):
            try:
                more, code = await read_all(server, execution_id, last_seq=last)
            except websockets.ConnectionClosedError:
                more, code = [], None
            rest += more
            last = max([m["seq"] for m in rest if "seq" in m], default=last)
            if code == 1000:
                break
        assert code == 1000
        assert_gap_free(rest, head_last + 1, stored[execution_id][-1]["seq"])

    await asyncio.gather(*[resume(ws, executions[i % 2]) for i, ws in enumerate(stalled)])


async def test_a_client_that_reads_again_in_time_gets_an_error_and_4408_then_resumes(server):
    closes_before = slow_closes(server)
    [execution_id] = start_executions(server, 1, nodes=30)
    stalled = await open_not_reading(server, execution_id)
    deadline = time.monotonic() + 20
    while slow_closes(server) == closes_before:
        assert time.monotonic() < deadline, "the stalled socket was never closed"
        await asyncio.sleep(0.02)

    head, code = await drain(stalled)

    assert code == 4408
    error = head[-1]
    assert error["type"] == "error" and "REALTIME_SEND_BUFFER_BYTES" in error["message"]
    assert "last_seq" in error["message"]
    last = head[-2]["seq"]
    assert_gap_free(head[:-1], 1, last)
    rest, code = await read_all(server, execution_id, last_seq=last)
    assert code == 1000
    assert rest[-1]["status"] == "completed"
    assert_gap_free(rest, last + 1, stored_events(server, execution_id)[-1]["seq"])
