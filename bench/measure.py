"""Clients that load the service and measure what they see."""

import asyncio
import contextlib
import gc
import json
import random
import statistics
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import websockets


def stamp_seconds(timestamp: str) -> float:
    """An event's ``timestamp`` as epoch seconds (same machine, same clock)."""
    return datetime.fromisoformat(timestamp).timestamp()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary_ms(values: list[float]) -> dict:
    return {
        "p50": percentile(values, 0.50) * 1000,
        "p90": percentile(values, 0.90) * 1000,
        "p99": percentile(values, 0.99) * 1000,
        "max": max(values) * 1000 if values else float("nan"),
        "mean": statistics.fmean(values) * 1000 if values else float("nan"),
    }


@contextlib.contextmanager
def collector_paused():
    """Pause this (measuring) process's garbage collector while it measures.

    A full collection over the objects of a thousand client sockets stops every
    receive of this process for tens of milliseconds, and each of those
    receives would count it as the server's latency. Both the service and the
    bare consumer are measured this way; the servers tune their own collector.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes ``pids`` have used so far."""
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return sum(t.user + t.system for t in times)


class Api:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.token = token

    def request(self, method: str, path: str, body=None) -> dict:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def timed(self, method: str, path: str, body=None) -> tuple[float, dict]:
        started = time.perf_counter()
        result = self.request(method, path, body)
        return time.perf_counter() - started, result

    async def create_executions(
        self, workflow_id: str, count: int, inputs: list[dict] | None = None
    ) -> tuple[list[str], list[float]]:
        """Create ``count`` executions (with ``inputs``, one each) from 8 client threads;
        their ids and REST latencies."""
        loop = asyncio.get_running_loop()
        inputs = inputs or [{}] * count
        with ThreadPoolExecutor(8) as pool:
            results = await asyncio.gather(
                *[
                    loop.run_in_executor(
                        pool,
                        self.timed,
                        "POST",
                        "/api/v1/executions",
                        {"workflow_id": workflow_id, "input_data": input_data},
                    )
                    for input_data in inputs
                ]
            )
        return [r["id"] for _, r in results], [seconds for seconds, _ in results]

    def events(self, execution_id: str) -> list[dict]:
        """Every stored event of an execution, a page of 1,000 at a time."""
        events: list[dict] = []
        while True:
            after = events[-1]["seq"] if events else 0
            page = self.request(
                "GET", f"/api/v1/executions/{execution_id}/events?after={after}&limit=1000"
            )["results"]
            events += page
            if len(page) < 1000:
                return events

    async def wait_started(self, execution_ids: list[str], timeout: float = 60) -> None:
        """Wait until every execution runs its node(s)."""
        deadline = time.monotonic() + timeout
        waiting = list(execution_ids)
        while True:
            details = await asyncio.gather(
                *[
                    asyncio.to_thread(self.request, "GET", f"/api/v1/executions/{execution_id}")
                    for execution_id in waiting
                ]
            )
            waiting = [
                d["id"] for d in details if any(n["status"] == "pending" for n in d["nodes"])
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(waiting)} executions not started after {timeout} s")
            await asyncio.sleep(0.2)


@dataclass
class Stream:
    """What one subscriber saw."""

    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    recorded: list[float] = field(default_factory=list)  # when each measured event was recorded
    status_latencies: list[float] = field(default_factory=list)  # of status messages only
    connected: float = 0.0
    close_code: int | None = None
    last_status: str = ""
    dropped: int = 0  # connections lost without a close, resumed with last_seq
    refused: int = 0  # handshakes that failed (the server too busy to answer), retried
    # A forced reconnect: when the client dropped its connection, and when it reconnected.
    dropped_at: float = 0.0
    reopened_at: float = 0.0
    # Streamed pieces (bench_stream): how many arrived, and the latency of each
    # written after connecting, from its write to its arrival.
    pieces: int = 0
    piece_latencies: list[float] = field(default_factory=list)


async def subscribe(
    ws_url: str,
    token: str,
    path: str,
    ready: asyncio.Event | None = None,
    drop_at: float | None = None,
    gap: float = 0.0,
) -> Stream:
    """Follow one stream to its end; latency counts only events recorded after connecting.

    Like any client, it resumes with ``last_seq`` when its connection drops without
    a close, and tries again a moment later when a handshake fails; both are
    counted, and the stream must still be whole. With ``drop_at`` (epoch seconds)
    it closes its connection then, once, and resumes ``gap`` seconds later.
    """
    stream = Stream()
    headers = {"Authorization": f"Bearer {token}"}
    url = ws_url + path
    while True:
        try:
            # No keepalive pings of its own, as browsers send none: the server pings.
            async with websockets.connect(
                url,
                additional_headers=headers,
                open_timeout=120,
                max_queue=None,
                ping_interval=None,
            ) as socket:
                stream.connected = stream.connected or time.time()
                if ready is not None:
                    ready.set()
                forced = await receive_until(stream, socket, None if stream.dropped_at else drop_at)
            if forced:
                await asyncio.sleep(gap)
                stream.reopened_at = time.time()
            else:
                stream.close_code = socket.close_code
                return stream
        except websockets.ConnectionClosedError:
            stream.dropped += 1
            if stream.dropped > 3:
                raise
        except websockets.InvalidHandshake:
            stream.refused += 1
            if stream.refused > 3:
                raise
            await asyncio.sleep(1)
        if stream.seqs:
            url = f"{ws_url}{path.split('?')[0]}?last_seq={max(stream.seqs)}"


async def receive_until(stream: Stream, socket, drop_at: float | None) -> bool:
    """Receive until the server closes (False) or until ``drop_at`` (True: the
    connection is dropped, and the stream notes when)."""
    loop = asyncio.get_running_loop()
    deadline = None if drop_at is None else loop.time() + drop_at - time.time()
    try:
        async with asyncio.timeout_at(deadline):
            async for frame in socket:
                receive(stream, json.loads(frame), time.time())
    except TimeoutError:
        stream.dropped_at = time.time()
        socket.transport.abort()  # lost, as a network drop: no closing handshake
        return True
    return False


def receive(stream: Stream, message: dict, received: float) -> None:
    if "seq" not in message:
        return
    kind = message.get("type", "status")
    stream.seqs.append(message["seq"])
    recorded = stamp_seconds(message["timestamp"])
    if recorded > stream.connected:
        stream.latencies.append(received - recorded)
        stream.recorded.append(recorded)
        if kind == "status":
            stream.status_latencies.append(received - recorded)
    if kind == "status":
        stream.last_status = message["status"]
    elif kind == "chunk":
        for stamp in message["data"].split():
            stream.pieces += 1
            if float(stamp) > stream.connected:
                stream.piece_latencies.append(received - float(stamp))


def losses(streams: list[Stream], expected_last: dict[int, int]) -> tuple[int, int, int]:
    """(expected, lost, duplicated) messages over streams that replay from seq 1."""
    expected = lost = duplicated = 0
    for index, stream in enumerate(streams):
        last = expected_last[index]
        expected += last
        seen = set(stream.seqs)
        lost += len(set(range(1, last + 1)) - seen)
        duplicated += len(stream.seqs) - len(seen)
    return expected, lost, duplicated


def across_reconnect(streams: list[Stream], sent: list[list[float]]) -> dict:
    """Over streams forced to reconnect once (``sent[i]``: when each event of stream
    ``i`` was sent): the events sent while disconnected and how many arrived, how
    long after reconnecting the last of them did, and the latency of the others."""
    expected = delivered = 0
    catch_up, live = [], []
    for stream, times in zip(streams, sent, strict=True):
        window = stream.dropped_at, stream.reopened_at

        def missed(moment: float, window=window) -> bool:
            return window[0] < moment < window[1]

        expected += sum(missed(moment) for moment in times)
        arrivals = [
            recorded + latency
            for latency, recorded in zip(stream.latencies, stream.recorded, strict=True)
            if missed(recorded)
        ]
        delivered += len(arrivals)
        if arrivals:
            catch_up.append(max(arrivals) - stream.reopened_at)
        live += [
            latency
            for latency, recorded in zip(stream.latencies, stream.recorded, strict=True)
            if not missed(recorded)
        ]
    forced = sum(bool(stream.dropped_at) for stream in streams)
    return {
        "reconnected": forced,
        "expected": expected,
        "delivered": delivered,
        "catch_up": summary_ms(catch_up),
        "live": summary_ms(live),
    }


async def poll(
    api: Api, execution_id: str, interval: float, stop: asyncio.Event, pool: ThreadPoolExecutor
) -> tuple[float, list[tuple]]:
    """Seed-style polling of one execution: when its first poll was sent, and
    ``(time, status, progress, message)`` each poll.

    ``pool`` needs a thread per poller, or pollers would wait for each other's
    requests and poll less often than ``interval``. Each starts at a random
    point of the interval, as pages opened at different moments do."""
    loop = asyncio.get_running_loop()
    seen = []
    await asyncio.sleep(random.uniform(0, interval))
    first = time.time()
    while not stop.is_set():
        started = time.time()
        body = await loop.run_in_executor(
            pool, api.request, "GET", f"/api/v1/executions/{execution_id}"
        )
        seen.append((time.time(), body["status"], body["progress"], body["message"]))
        if body["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(max(0.0, interval - (time.time() - started)))
    return first, seen


def polling_latencies(
    first: float, polls: list[tuple], status_events: list[dict]
) -> tuple[list[float], int, int]:
    """How late each poll noticed a state change recorded after polling began
    (``first``), how many such changes it never saw, and how many there were."""
    status_events = [e for e in status_events if stamp_seconds(e["timestamp"]) > first]
    latencies, noticed = [], set()
    previous = None
    for polled_at, status, progress, message in polls:
        state = (status, progress, message)
        if state == previous:
            continue
        previous = state
        matching = [e for e in status_events if (e["status"], e["progress"], e["message"]) == state]
        if matching:
            event = matching[-1]
            noticed.add(event["seq"])
            latencies.append(polled_at - stamp_seconds(event["timestamp"]))
    return latencies, len(status_events) - len(noticed), len(status_events)


async def hold_idle(ws_url: str, token: str, path: str, count: int, parallel: int = 500) -> list:
    """Open ``count`` sockets that only read their snapshot, at most ``parallel``
    handshakes at a time; return them still open."""
    headers = {"Authorization": f"Bearer {token}"}
    slots = asyncio.Semaphore(parallel)

    async def one():
        async with slots:
            socket = await websockets.connect(
                ws_url + path, additional_headers=headers, open_timeout=120, proxy=None
            )
            await socket.recv()
            return socket

    return await asyncio.gather(*[one() for _ in range(count)])
