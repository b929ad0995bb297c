"""django-eventstream, the ecosystem's push library, under the service's load.

Its server (``bench.peer_app``) runs on one daphne process with its own SQLite
file; its subscribers are Server-Sent Events clients on raw asyncio streams, one
per connection, that resume with ``Last-Event-ID`` as a browser's EventSource
does. The publisher is a thread of the server process that calls
``send_event`` on the service's schedule (``bench.schedule``); each event's
data carries its send time. Every subscriber drops its connection once, at a
set moment, and reconnects ``gap`` seconds later.
"""

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench import processes
from bench.measure import (
    Stream,
    across_reconnect,
    collector_paused,
    cpu_seconds,
    losses,
    rss_kib,
    summary_ms,
)
from bench.schedule import END_EVENTS

# Handshakes under way at once while the subscribers first connect (not measured).
CONNECTING = 50
# How long after the last event was sent the subscribers may still receive.
GRACE = 30


class Subscriber:
    """One SSE client of one channel; what it saw is in ``stream``."""

    def __init__(self, port: int, channel: str, last_seq: int):
        self.port = port
        self.channel = channel
        self.last_seq = last_seq
        self.stream = Stream()
        self.last_event_id = ""

    async def run(self, opened: asyncio.Event, drop_at: asyncio.Future, gap: float) -> Stream:
        """Read until the channel's last event; at ``drop_at``'s moment (epoch
        seconds, known once every subscriber is open) disconnect, and ``gap``
        seconds later resume with ``Last-Event-ID``."""
        loop = asyncio.get_running_loop()
        following = asyncio.create_task(self.resuming(opened))
        moment = await drop_at
        try:
            async with asyncio.timeout_at(loop.time() + moment - time.time()):
                await following
            return self.stream  # the channel ended before the drop
        except TimeoutError:
            self.stream.dropped_at = time.time()
        await asyncio.sleep(gap)
        self.stream.reopened_at = time.time()
        await self.resuming(None)
        return self.stream

    async def resuming(self, opened: asyncio.Event | None) -> None:
        """Follow; like an EventSource, resume a moment later when the connection
        fails (counted in ``stream.dropped``)."""
        while True:
            try:
                return await self.follow(opened)
            except (OSError, asyncio.IncompleteReadError):
                self.stream.dropped += 1
                if self.stream.dropped > 3:
                    raise
            await asyncio.sleep(1)

    async def follow(self, opened: asyncio.Event | None) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            resume = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id else ""
            writer.write(
                f"GET /events/{self.channel}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Accept: text/event-stream\r\n{resume}\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{self.channel}: {head.decode(errors='replace')}")
            chunked = b"transfer-encoding: chunked" in head.lower()
            buffer = ""
            async for data in body(reader, chunked):
                *blocks, buffer = (buffer + data).split("\n\n")
                for block in blocks:
                    if self.on_event(block, opened):
                        return
        finally:
            writer.close()

    def on_event(self, block: str, opened: asyncio.Event | None) -> bool:
        """Handle one SSE event; True once the channel's last event has arrived."""
        received = time.time()
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = fields.get(name, "") + value.removeprefix(" ")
        if fields.get("event") == "stream-open" and opened is not None:
            self.stream.connected = received
            opened.set()
        if fields.get("event") != "message":
            return False
        self.last_event_id = fields.get("id", self.last_event_id)
        message = json.loads(fields["data"])
        self.stream.seqs.append(message["seq"])
        self.stream.latencies.append(received - message["timestamp"])
        self.stream.recorded.append(message["timestamp"])
        return message["seq"] >= self.last_seq


async def body(reader: asyncio.StreamReader, chunked: bool):
    """The response body's text as it arrives (HTTP/1.1 chunked, or until EOF)."""
    while True:
        if not chunked:
            data = await reader.read(65536)
            if not data:
                return
            yield data.decode()
            continue
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            return
        yield (await reader.readexactly(size + 2))[:-2].decode()


def start_server(directory: Path) -> processes.Server:
    env = {
        **processes.base_env(),
        "DJANGO_SETTINGS_MODULE": "bench.peer_app.settings",
        "PEER_DATABASE": str(directory / "peer.sqlite3"),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        cwd=processes.ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    server = processes.Server(
        port=processes.free_port(),
        env=env,
        log=directory / "peer.log",
        app="bench.peer_app.asgi:application",
    )
    server.start()
    return server


def request(server: processes.Server, method: str, path: str) -> dict:
    with urllib.request.urlopen(
        urllib.request.Request(server.url + path, method=method), timeout=30
    ) as response:
        return json.load(response)


async def open_all(subscribers: list[Subscriber], drop_at: asyncio.Future, gap: float) -> list:
    """Start every subscriber, ``CONNECTING`` handshakes at a time; return their
    tasks once each has its stream open."""
    tasks = []
    for start in range(0, len(subscribers), CONNECTING):
        batch = subscribers[start : start + CONNECTING]
        opened = [asyncio.Event() for _ in batch]
        tasks += [
            asyncio.create_task(subscriber.run(event, drop_at, gap))
            for subscriber, event in zip(batch, opened, strict=True)
        ]
        await asyncio.gather(*[event.wait() for event in opened])
    return tasks


async def warm_up(server: processes.Server) -> None:
    """One stream opened and closed, and the publisher's report read, so that the
    server has loaded its code before its memory is measured (as the service's
    earlier phases have loaded its code)."""
    opened = asyncio.Event()
    following = asyncio.create_task(Subscriber(server.port, "warm-up", 1).follow(opened))
    await opened.wait()
    following.cancel()
    await asyncio.to_thread(request, server, "GET", "/published")


async def peer_phase(size, directory: Path, drop: tuple[float, float]) -> dict:
    """The service's load on django-eventstream: latency, delivered vs expected,
    across the forced reconnect (``drop``: seconds after the first event, gap),
    server CPU seconds and memory per connection."""
    server = start_server(directory)
    try:
        await warm_up(server)
        return await measure(server, size, drop)
    finally:
        server.stop()


async def measure(server: processes.Server, size, drop: tuple[float, float]) -> dict:
    rate = size.events_per_second / size.executions
    count = max(1, int(rate * size.seconds))
    last_seq = count + END_EVENTS
    subscribers = [
        Subscriber(server.port, f"execution-{e}", last_seq)
        for e in range(size.executions)
        for _ in range(size.subscribers_per_execution)
    ]
    pid = server.process.pid
    drop_at = asyncio.get_running_loop().create_future()
    with collector_paused():
        before = rss_kib(pid)
        cpu = cpu_seconds([pid]), time.process_time()
        tasks = await open_all(subscribers, drop_at, drop[1])
        await asyncio.sleep(2)
        connected = rss_kib(pid)
        published = await publish(server, size.executions, rate, count, size.stagger, drop_at, drop)
        failed = await finish(tasks, grace=GRACE)
        cpu = cpu_seconds([pid]) - cpu[0], time.process_time() - cpu[1]
    streams = [subscriber.stream for subscriber in subscribers]
    expected, lost, duplicated = losses(streams, dict.fromkeys(range(len(streams)), last_seq))
    sent = [[stamp for _, stamp in published["sent"].get(s.channel, [])] for s in subscribers]
    return {
        "connections": len(subscribers),
        "kib_per_connection": (connected - before) / len(subscribers),
        "latency": summary_ms([v for stream in streams for v in stream.latencies]),
        "expected": expected,
        "lost": lost,
        "duplicated": duplicated,
        "reconnect": across_reconnect(streams, sent),
        "server_cpu_s": cpu[0],
        "client_cpu_s": cpu[1],
        "failed": failed,
        "publish_errors": published["errors"],
    }


async def publish(
    server, channels: int, rate: float, count: int, stagger: float, drop_at, drop
) -> dict:
    """Start the server's publisher, set the moment to drop, and wait until it is done."""
    query = f"channels={channels}&rate={rate}&count={count}&stagger={stagger}"
    start = time.time()
    await asyncio.to_thread(request, server, "POST", f"/publish?{query}")
    drop_at.set_result(start + drop[0])
    while not (published := await asyncio.to_thread(request, server, "GET", "/published"))["done"]:
        await asyncio.sleep(0.5)
    return published


async def finish(tasks: list, grace: float) -> list[str]:
    """Wait ``grace`` seconds at most for the subscribers to have every event;
    then stop the rest. Returns how each that failed or was stopped ended."""
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [
        f"unfinished after {grace} s" if isinstance(r, asyncio.CancelledError) else repr(r)
        for r in results
        if isinstance(r, BaseException)
    ]
