"""Server-Sent Events beside WebSockets, side by side on one server in one run.

``python -m bench.sse [--size quick|full] [--runs 3]``: per run,

* latency: ``executions`` executions each record ``rate`` events a second
  for ``seconds``; each is followed by ``subscribers`` WebSocket clients and
  as many SSE clients at once, so both transports carry the same events at
  the same moments. A message's latency is from its ``timestamp`` (when it
  was recorded) to its arrival; every client must receive every event once.
* memory: ``idle`` WebSockets held open on one execution, the server's RSS
  before and after, then as many idle event streams: KiB per connection.

The clients are raw asyncio streams for SSE (as ``bench.peer`` reads
django-eventstream) and ``websockets`` for the sockets. Output: one JSON
object per run and a table of the median of each figure over the runs.
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets

from bench import processes
from bench.measure import Api, hold_idle, rss_kib, stamp_seconds, summary_ms


@dataclass(frozen=True)
class Size:
    executions: int
    subscribers: int  # per transport, per execution
    rate: float  # events per second per execution
    seconds: float
    idle: int


SIZES = {
    "smoke": Size(executions=2, subscribers=2, rate=10, seconds=2, idle=20),
    "quick": Size(executions=10, subscribers=5, rate=10, seconds=8, idle=300),
    "full": Size(executions=50, subscribers=10, rate=10, seconds=20, idle=2000),
}
ENV = processes.UNLIMITED_EMITTER_ENV


@dataclass
class Seen:
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    recorded: list[float] = field(default_factory=list)


def take(seen: Seen, message: dict, arrived: float) -> None:
    if isinstance(message.get("seq"), int):
        seen.seqs.append(message["seq"])
        recorded = stamp_seconds(message["timestamp"])
        seen.recorded.append(recorded)
        seen.latencies.append(arrived - recorded)


async def follow_socket(url: str, token: str, seen: Seen, opened: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers, max_size=None) as socket:
        opened.set()
        async for frame in socket:
            take(seen, json.loads(frame), time.time())


async def open_stream(port: int, path: str, token: str):
    """A raw SSE request; the reader after the response's headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"event stream refused: {head[:200]!r}")
    return reader, writer


async def follow_stream(port: int, path: str, token: str, seen: Seen, opened: asyncio.Event):
    """Read a chunked ``text/event-stream`` to its end."""
    reader, writer = await open_stream(port, path, token)
    opened.set()
    buffer = b""
    try:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                return
            buffer += await reader.readexactly(size + 2)
            arrived = time.time()
            *blocks, buffer = buffer.replace(b"\r\n\r\n", b"\n\n").split(b"\n\n")
            for block in blocks:
                for line in block.split(b"\n"):
                    if line.startswith(b"data: "):
                        take(seen, json.loads(line[6:]), arrived)
    finally:
        writer.close()


def emitting(api: Api, size: Size) -> str:
    definition = {
        "nodes": [
            {
                "id": "emit",
                "type": "bench_emit",
                "params": {"count": int(size.rate * size.seconds), "interval": 1 / size.rate},
            }
        ],
        "edges": [],
    }
    return api.request("POST", "/api/v1/workflows", {"name": "sse", "definition": definition})["id"]


async def latency_case(deployment, size: Size) -> dict:
    server = deployment.servers[0]
    api = Api(server.url, deployment.token)
    start_at = time.time() + 3 + size.executions * size.subscribers * 0.01
    ids, _ = await api.create_executions(
        emitting(api, size), size.executions, [{"start_at": start_at}] * size.executions
    )
    sockets: list[Seen] = []
    streams: list[Seen] = []
    tasks, openings = [], []
    for execution_id in ids:
        for _ in range(size.subscribers):
            for kind, seen in (("ws", Seen()), ("sse", Seen())):
                opened = asyncio.Event()
                openings.append(opened)
                path = f"/api/v1/executions/{execution_id}/stream?last_seq=0"
                work = (
                    follow_socket(
                        f"{server.ws_url}/api/v1/ws/executions/{execution_id}?last_seq=0",
                        deployment.token,
                        seen,
                        opened,
                    )
                    if kind == "ws"
                    else follow_stream(server.port, path, deployment.token, seen, opened)
                )
                (sockets if kind == "ws" else streams).append(seen)
                tasks.append(asyncio.create_task(work))
    await asyncio.wait_for(asyncio.gather(*[o.wait() for o in openings]), 60)
    await asyncio.wait_for(asyncio.gather(*tasks), size.seconds + 60)
    stored = {i: [e["seq"] for e in api.events(i)] for i in ids}
    expected = [stored[i] for i in ids for _ in range(size.subscribers)]
    return {
        "events_per_second": size.executions * size.rate,
        "ws": transport_figures(sockets, expected, start_at),
        "sse": transport_figures(streams, expected, start_at),
    }


def transport_figures(seen: list[Seen], expected: list[list[int]], start_at: float) -> dict:
    """Latency of the live events (recorded after ``start_at``) and what was not
    received exactly once in order."""
    latencies = [
        latency
        for s in seen
        for latency, recorded in zip(s.latencies, s.recorded, strict=True)
        if recorded >= start_at  # live: not the catch-up of the run's first events
    ]
    return {
        "clients": len(seen),
        "incomplete": sum(s.seqs != want for s, want in zip(seen, expected, strict=True)),
        "latency_ms": summary_ms(latencies),
    }


async def hold_streams(port: int, path: str, token: str, count: int, parallel: int = 200):
    slots = asyncio.Semaphore(parallel)

    async def one():
        async with slots:
            reader, writer = await open_stream(port, path, token)
            await reader.readuntil(b"\n\n")  # the snapshot
            return writer

    return await asyncio.gather(*[one() for _ in range(count)])


async def memory_case(deployment, size: Size, kind: str) -> dict:
    server = deployment.servers[0]
    api = Api(server.url, deployment.token)
    waiting = {"nodes": [{"id": "w", "type": "delay", "params": {"seconds": 3600}}], "edges": []}
    workflow = api.request("POST", "/api/v1/workflows", {"name": "idle", "definition": waiting})
    [execution_id], _ = await api.create_executions(workflow["id"], 1)
    pid = server.process.pid
    await asyncio.sleep(2)
    before = rss_kib(pid)
    if kind == "ws":
        path = f"/api/v1/ws/executions/{execution_id}"
        held = await hold_idle(server.ws_url, deployment.token, path, size.idle)
    else:
        path = f"/api/v1/executions/{execution_id}/stream"
        held = await hold_streams(server.port, path, deployment.token, size.idle)
    await asyncio.sleep(2)
    after = rss_kib(pid)
    for connection in held:
        closing = connection.close()
        if asyncio.iscoroutine(closing):
            await closing
    api.request("POST", f"/api/v1/executions/{execution_id}/cancel")
    return {"connections": len(held), "kib_per_connection": (after - before) / size.idle}


async def on_fresh_server(case, *args):
    """``case(deployment, *args)`` on a server of its own (memory freed by one case
    would be reused by the next, hiding what it costs)."""
    with tempfile.TemporaryDirectory() as directory:
        deployment = processes.embedded(Path(directory), **ENV)
        try:
            return await case(deployment, *args)
        finally:
            deployment.stop()


async def run_once(size: Size) -> dict:
    memory = {kind: await on_fresh_server(memory_case, size, kind) for kind in ("ws", "sse")}
    return {"latency": await on_fresh_server(latency_case, size), "memory": memory}


def table(runs: list[dict]) -> str:
    def median(path):
        values = []
        for run in runs:
            value = run
            for key in path:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    rows = ["| | WebSocket | SSE | SSE / WebSocket |", "| --- | --- | --- | --- |"]
    for label, path in (
        ("p50 latency, ms", ("latency", "{}", "latency_ms", "p50")),
        ("p99 latency, ms", ("latency", "{}", "latency_ms", "p99")),
        ("KiB per idle connection", ("memory", "{}", "kib_per_connection")),
    ):
        ws = median([p.format("ws") for p in path])
        sse = median([p.format("sse") for p in path])
        rows.append(f"| {label} | {ws:.1f} | {sse:.1f} | {sse / ws:.2f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    processes.raise_open_files_limit()
    runs = []
    for number in range(args.runs):
        result = asyncio.run(run_once(SIZES[args.size]))
        print(json.dumps({"run": number + 1, **result}), flush=True)
        runs.append(result)
    print(table(runs))
    bad = [
        f"run {i + 1}: {kind} {r['latency'][kind]['incomplete']} clients incomplete"
        for i, r in enumerate(runs)
        for kind in ("ws", "sse")
        if r["latency"][kind]["incomplete"]
    ]
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
