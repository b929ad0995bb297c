"""Benchmarks of the execution stream, in both modes, against two baselines.

    python -m bench --size quick     # seconds; what CI runs
    python -m bench --size full      # the published figures (docs/benchmarks.md)

Per mode (embedded: one daphne with SQLite and the in-memory layer;
distributed: 2 daphne servers, 2 workers, PostgreSQL, Redis) it opens
subscribers spread over concurrently running executions whose nodes record
events at a set rate, and measures for every message received
latency = receive time - the event's timestamp (one machine, one clock),
delivered vs expected (every gap counts as lost), events/s delivered, server
memory per idle socket and REST create latency. In the same run it measures
seed-style polling (GET every 2 s) and a bare Channels consumer that only
forwards group_send (the framework's floor) under the same load. The
executions start and end spread over a few seconds; a stress case repeats the
load with all of them ending within one second. Once per run, the same load
goes to django-eventstream (bench.peer) beside the embedded service, every
subscriber of both forced to reconnect once.
"""

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import websockets

from bench import processes
from bench.ceiling import CeilingSize, ceiling_failures, ceiling_phase
from bench.measure import (
    Api,
    across_reconnect,
    collector_paused,
    cpu_seconds,
    hold_idle,
    losses,
    poll,
    polling_latencies,
    rss_kib,
    stamp_seconds,
    subscribe,
    summary_ms,
)
from bench.schedule import END_EVENTS, first_ticks
from bench.storm import StormSize, storm_failures, storm_phase
from bench.tokens import TokenSize, token_failures, token_phase


@dataclass(frozen=True)
class Size:
    executions: int
    subscribers_per_execution: int
    events_per_second: float  # recorded, over all executions
    seconds: float
    idle_sockets: int
    ramp: tuple[int, ...]  # events/s steps for one worker
    ramp_seconds: float
    warmup: float
    # The executions start (and so end) spread over this many seconds; 0: over
    # one tick interval, so that all of them end within that interval.
    stagger: float = 0.0
    storm: StormSize | None = None
    ceiling: CeilingSize | None = None
    tokens: TokenSize | None = None


SIZES = {
    "quick": Size(
        4,
        3,
        20,
        3,
        100,
        (50, 100),
        3,
        2,
        stagger=1,
        storm=StormSize(8, 5, interval=0.5, seconds=60, embedded_lease=3),
        ceiling=CeilingSize(4, 5, steps=(40,), seconds=2, warmup=2),
        tokens=TokenSize(4, 3, 50, 3, 2),
    ),
    "full": Size(
        100,
        10,
        100,
        30,
        10_000,
        (100, 200, 400, 800, 1200, 1600, 2000, 3000, 4000, 5000, 6000),
        10,
        12,
        stagger=10,
        storm=StormSize(500, 10, interval=2, seconds=600),
        ceiling=CeilingSize(
            100, 10, steps=(50, 100, 200, 300, 400, 600, 800, 1000, 1200), seconds=10, warmup=12
        ),
        tokens=TokenSize(100, 10, 100, 30, 12),
    ),
}
# The stress case: every execution ends within one tick interval.
END_BURST_SECONDS = {"quick": 2, "full": 5}


def emit_workflow(api: Api, size_rate_per_execution: float, count: int) -> str:
    """One node that waits for its execution's ``start_at``, then records ``count`` ticks."""
    definition = {
        "nodes": [
            {
                "id": "emit",
                "type": "bench_emit",
                "params": {"count": count, "interval": 1 / size_rate_per_execution},
            },
        ],
        "edges": [],
    }
    return api.request("POST", "/api/v1/workflows", {"name": "bench", "definition": definition})[
        "id"
    ]


# Creations a client makes while the load runs, one after another.
CREATES_PER_SECOND = 5


async def creates_under_load(api: Api, start: float, seconds: float) -> list[float]:
    """Seconds each ``POST /api/v1/executions`` took, made at ``CREATES_PER_SECOND``
    from ``start`` (Unix time) for ``seconds``: what a REST client sees under the load."""
    definition = {"nodes": [{"id": "now", "type": "delay", "params": {"seconds": 0}}], "edges": []}
    body = {"name": "created under load", "definition": definition}
    workflow = (await asyncio.to_thread(api.request, "POST", "/api/v1/workflows", body))["id"]
    await asyncio.sleep(max(0.0, start - time.time()))
    latencies = []
    for n in range(max(1, int(seconds * CREATES_PER_SECOND))):
        await asyncio.sleep(max(0.0, start + n / CREATES_PER_SECOND - time.time()))
        began = time.perf_counter()
        await asyncio.to_thread(
            api.request, "POST", "/api/v1/executions", {"workflow_id": workflow, "input_data": {}}
        )
        latencies.append(time.perf_counter() - began)
    return latencies


async def push_phase(
    deployment, size: Size, subscribe_to_streams: bool, drop: tuple[float, float] | None = None
) -> dict:
    """Subscribers on running executions, their latencies and losses; or, without
    subscribers, seed-style pollers on the same load. With ``drop`` (seconds after
    the first tick, gap) every subscriber reconnects once (bench.peer)."""
    api = Api(deployment.servers[0].url, deployment.token)
    rate = size.events_per_second / size.executions
    count = max(1, int(rate * size.seconds))
    workflow = emit_workflow(api, rate, count)
    # Evenly paced (bench.schedule), from a moment far enough ahead for every
    # execution to be created, started and subscribed to (the warm-up).
    first_tick = time.time() + size.warmup
    inputs = [
        {"start_at": first_tick + offset}
        for offset in first_ticks(size.executions, 1 / rate, size.stagger)
    ]
    ids, create_latencies = await api.create_executions(workflow, size.executions, inputs)
    # Subscribers connect once every execution has started: the starts are not
    # measured, and no event is recorded during the connect storm.
    await api.wait_started(ids)
    polling = not subscribe_to_streams
    subscribers = [
        subscribe(
            deployment.servers[(e + s) % len(deployment.servers)].ws_url,
            deployment.token,
            f"/api/v1/ws/executions/{execution_id}?last_seq=0",
            **({"drop_at": first_tick + drop[0], "gap": drop[1]} if drop else {}),
        )
        for e, execution_id in enumerate(ids)
        for s in range(size.subscribers_per_execution)
        if subscribe_to_streams
    ]
    stop = asyncio.Event()
    pids = [server.process.pid for server in deployment.servers]
    cpu = cpu_seconds(pids), time.process_time()  # the servers', the measuring client's
    with ThreadPoolExecutor(len(ids) if polling else 1) as pool, collector_paused():
        pollers = [poll(api, e, 2.0, stop, pool) for e in ids] if polling else []
        creates = asyncio.create_task(
            creates_under_load(api, first_tick + size.seconds / 3, size.seconds / 3)
        )
        results = await asyncio.gather(*subscribers, *pollers)
        loaded_creates = await creates
    streams, polls = results[: len(subscribers)], results[len(subscribers) :]
    cpu = cpu_seconds(pids) - cpu[0], time.process_time() - cpu[1]
    elapsed = time.time() - first_tick
    heads = {}
    status_events = {}
    recorded_at = {}
    for execution_id in ids:
        events = api.events(execution_id)
        heads[execution_id] = events[-1]["seq"]
        recorded_at[execution_id] = [stamp_seconds(e["timestamp"]) for e in events]
        status_events[execution_id] = [e for e in events if e["type"] == "status"]
    if polling:
        poll_latencies, missed = [], 0
        changes = 0
        for execution_id, (first, seen) in zip(ids, polls, strict=True):
            noticed, never, recorded = polling_latencies(first, seen, status_events[execution_id])
            poll_latencies += noticed
            missed += never
            changes += recorded
        return {
            "polling": summary_ms(poll_latencies),
            "polling_missed": missed,
            "polling_changes": changes,
        }
    expected_last = {
        i: heads[ids[i // size.subscribers_per_execution]] for i in range(len(streams))
    }
    expected, lost, duplicated = losses(streams, expected_last)
    latencies = [value for stream in streams for value in stream.latencies]
    # Steady state: events recorded once every subscriber had connected.
    settled = max(stream.connected for stream in streams)
    steady = [
        latency
        for stream in streams
        for latency, recorded in zip(stream.latencies, stream.recorded, strict=True)
        if recorded > settled
    ]
    # Measured, not scheduled: a worker that cannot keep up records late.
    recorded = [moment for stream in streams for moment in stream.recorded]
    span = max(recorded) - min(recorded) if len(recorded) > 1 else 0.0
    sent = [recorded_at[ids[i // size.subscribers_per_execution]] for i in range(len(streams))]
    return {
        "reconnect": across_reconnect(streams, sent) if drop else None,
        "server_cpu_s": cpu[0],
        "client_cpu_s": cpu[1],
        "recorded_per_second": len(recorded) / size.subscribers_per_execution / max(span, 1e-9),
        "latency": summary_ms(latencies),
        "steady": summary_ms(steady),
        "status_latency": summary_ms([v for stream in streams for v in stream.status_latencies]),
        "dropped": sum(stream.dropped for stream in streams),
        "refused": sum(stream.refused for stream in streams),
        "messages": len(latencies),
        "expected": expected,
        "lost": lost,
        "duplicated": duplicated,
        "unfinished": sum(s.last_status != "completed" or s.close_code != 1000 for s in streams),
        "delivered_per_second": len(latencies) / max(elapsed, 1e-9),
        "create": summary_ms(create_latencies),
        "create_under_load": summary_ms(loaded_creates),
    }


async def idle_phase(deployment, size: Size) -> dict:
    """Server memory per idle subscriber, all on one server process, and how long
    they take to connect."""
    api = Api(deployment.servers[0].url, deployment.token)
    workflow = api.request(
        "POST",
        "/api/v1/workflows",
        {
            "name": "idle",
            "definition": {
                "nodes": [{"id": "wait", "type": "delay", "params": {"seconds": 3600}}],
                "edges": [],
            },
        },
    )["id"]
    [execution_id], _ = await api.create_executions(workflow, 1)
    server = deployment.servers[0]
    before = rss_kib(server.process.pid)
    cpu, started = time.process_time(), time.monotonic()
    server_cpu = cpu_seconds([server.process.pid])
    sockets = await hold_idle(
        server.ws_url, deployment.token, f"/api/v1/ws/executions/{execution_id}", size.idle_sockets
    )
    connect_seconds = time.monotonic() - started
    client_cpu = (time.process_time() - cpu) / connect_seconds
    server_cpu = (cpu_seconds([server.process.pid]) - server_cpu) / connect_seconds
    await asyncio.sleep(2)
    after = rss_kib(server.process.pid)
    await asyncio.gather(*[s.close() for s in sockets])
    api.request("POST", f"/api/v1/executions/{execution_id}/cancel")
    return {
        "sockets": len(sockets),
        "kib_per_socket": (after - before) / len(sockets),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "connect_seconds": connect_seconds,
        "handshakes_per_second": len(sockets) / connect_seconds,
        # The measuring client's and the server's shares of one core while connecting.
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }


async def bare_phase(deployment, size: Size) -> dict:
    """The same subscribers and rate on a bare consumer that forwards group_send."""
    service = list(deployment.servers)
    # No protocol pings during the measure: plain daphne pings the sockets of a
    # connect storm all at once (the service spreads them; realtime.patches.daphne).
    bare = [
        deployment.start_server(f"bare-{n}", app="bench.bare:application", ping_interval=3600)
        for n in range(len(service))
    ]
    deployment.servers = service
    rate = size.events_per_second / size.executions
    count = max(1, int(rate * size.seconds))
    latencies: list[float] = []
    received: dict[int, int] = {}
    done = asyncio.Event()

    async def listen(index: int, server, group: int):
        async with websockets.connect(
            f"{server.ws_url}/bare/{group}",
            max_queue=None,
            ping_interval=None,  # as in measure.subscribe
        ) as socket:
            ready.release()
            while not done.is_set():
                try:
                    frame = await asyncio.wait_for(socket.recv(), 0.5)
                except TimeoutError:
                    continue
                message = json.loads(frame)
                latencies.append(time.time() - stamp_seconds(message["timestamp"]))
                received[index] = received.get(index, 0) + 1

    subscribers = size.executions * size.subscribers_per_execution
    ready = asyncio.Semaphore(0)
    with collector_paused():
        listeners = [
            asyncio.create_task(listen(i, bare[i % len(bare)], i // size.subscribers_per_execution))
            for i in range(subscribers)
        ]
        for _ in range(subscribers):
            await ready.acquire()
        async with websockets.connect(
            f"{bare[0].ws_url}/publish?groups={size.executions}&rate={rate}&count={count}"
            f"&stagger={size.stagger}"
        ) as publisher:
            await publisher.recv()
        await asyncio.sleep(0.5)
        done.set()
        await asyncio.gather(*listeners)
    for server in bare:
        server.stop(crash=True)
    expected = subscribers * (count + END_EVENTS)
    return {
        "latency": summary_ms(latencies),
        "expected": expected,
        "lost": expected - sum(received.values()),
    }


async def ramp_phase(deployment, size: Size) -> list[dict]:
    """The highest rate one worker records and pushes with p99 under 100 ms."""
    steps = []
    for target in size.ramp:
        executions = 20
        step = Size(executions, 1, target, size.ramp_seconds, 0, (), 0, 2)
        result = await push_phase(deployment, step, subscribe_to_streams=True)
        steps.append(
            {
                "target": target,
                "p50": result["steady"]["p50"],
                "p99": result["steady"]["p99"],
                "lost": result["lost"],
                "delivered_per_second": result["delivered_per_second"],
                "recorded_per_second": result["recorded_per_second"],
            }
        )
        # Past the limit the tail grows; a worker that cannot keep up shows as a
        # recorded rate below the one asked for.
        if result["steady"]["p99"] > 100:
            break
    return steps


# Each worker runs this many executions at once: the storm's 500 fit in two.
STORM_WORKER_CONCURRENCY = 300


async def settled() -> None:
    """Let the disk write what the last phase left in the page cache, so that its
    writeback does not stall the next phase's commits (a commit's wait is part of
    every event's latency)."""
    await asyncio.to_thread(os.sync)
    await asyncio.sleep(1)


async def run_mode(mode: str, size: Size, burst_size: Size, directory: Path) -> dict:
    extra = {
        "EXTRA_INSTALLED_APPS": "bench.emitter",
        # One user stands in for thousands of clients here.
        "REALTIME_MAX_SOCKETS_PER_USER": "100000",
        "API_EXECUTION_CREATE_RATE": "",
        "EXECUTIONS_MAX_ACTIVE_PER_USER": "0",
        # And one address for all of them: a storm of thousands of reconnects.
        "REALTIME_HANDSHAKE_RATE": "",
    }
    if mode == "embedded" and size.storm and size.storm.embedded_lease:
        extra["EXECUTIONS_LEASE_SECONDS"] = str(size.storm.embedded_lease)
    deployment = (
        processes.embedded(directory, **extra)
        if mode == "embedded"
        # Enough run slots for the storm's executions, all running at once.
        else processes.distributed(directory, worker_concurrency=STORM_WORKER_CONCURRENCY, **extra)
    )
    try:
        await settled()
        push = await push_phase(deployment, size, subscribe_to_streams=True)
        # Polling runs apart, on the same load, so each is measured undisturbed.
        await settled()
        push.update(await push_phase(deployment, size, subscribe_to_streams=False))
        await settled()
        end_burst = await push_phase(deployment, burst_size, subscribe_to_streams=True)
        await settled()
        idle = await idle_phase(deployment, size)
        await settled()
        bare = await bare_phase(deployment, size)
        tokens = None
        if size.tokens:
            await settled()
            tokens = await token_phase(deployment, size.tokens)
        ceiling = None
        if size.ceiling:
            await settled()
            ceiling = await ceiling_phase(deployment, size.ceiling, push_phase, Size)
        ramp = []
        if mode == "distributed":
            spare = deployment.workers[1:]
            for worker in spare:
                worker.kill()
            await settled()
            ramp = await ramp_phase(deployment, size)
            # The storm's executions need every worker again.
            for n in range(len(spare)):
                deployment.start_worker(
                    f"worker-again-{n + 1}", concurrency=STORM_WORKER_CONCURRENCY
                )
        # Last: it restarts a server and leaves the largest log behind.
        await settled()
        storm = await storm_phase(deployment, size.storm) if size.storm else None
        return {
            "push": push,
            "end_burst": end_burst,
            "idle": idle,
            "bare": bare,
            "ramp": ramp,
            "storm": storm,
            "ceiling": ceiling,
            "tokens": tokens,
        }
    finally:
        deployment.stop()


def peer_drop(size: Size) -> tuple[float, float]:
    """When, in seconds after the load's first event (mid-load, every channel
    started), each subscriber of the peer comparison drops its connection, and
    for how long."""
    return (size.stagger + size.seconds) / 2, min(1.0, size.seconds / 6)


async def peer_comparison(size: Size, directory: Path) -> dict:
    """django-eventstream (bench.peer), then the embedded service, under the same
    load, with every subscriber forced to reconnect once at the same moment."""
    from bench.peer import peer_phase

    (directory / "peer").mkdir(exist_ok=True)
    peer = await peer_phase(size, directory / "peer", peer_drop(size))
    (directory / "service").mkdir(exist_ok=True)
    # The environment of run_mode's deployments.
    deployment = processes.embedded(
        directory / "service",
        EXTRA_INSTALLED_APPS="bench.emitter",
        REALTIME_MAX_SOCKETS_PER_USER="100000",
        API_EXECUTION_CREATE_RATE="",
        EXECUTIONS_MAX_ACTIVE_PER_USER="0",
    )
    try:
        push = await push_phase(deployment, size, subscribe_to_streams=True, drop=peer_drop(size))
        # Memory per connection over as many connections as the peer held.
        idle = await idle_phase(deployment, replace(size, idle_sockets=peer["connections"]))
    finally:
        deployment.stop()
    return {"peer": peer, "service": {"push": push, "idle": idle}}


def run_peer_comparison(args, size: Size) -> dict:
    if args.logs:
        directory = Path(args.logs) / "peer"
        directory.mkdir(parents=True, exist_ok=True)
        return asyncio.run(peer_comparison(size, directory))
    with tempfile.TemporaryDirectory() as directory:
        return asyncio.run(peer_comparison(size, Path(directory)))


def peer_failures(comparison: dict) -> list[str]:
    """This service's losses in the peer comparison, and errors that make the
    peer's figures void (a client or the publisher that failed). The peer's own
    losses and duplicates are its figures, reported, not failures of this run."""
    service, peer = comparison["service"]["push"], comparison["peer"]
    failures = []
    if service["lost"] or service["duplicated"] or service["unfinished"]:
        failures.append(
            f"peer comparison, this service: {service['lost']} lost, "
            f"{service['duplicated']} duplicated, {service['unfinished']} unfinished"
        )
    errors = [e for e in peer["failed"] if not e.startswith("unfinished")]
    if errors or peer["publish_errors"]:
        failures.append(
            f"peer comparison, django-eventstream: clients failed: {errors[:3]}, "
            f"publish errors: {peer['publish_errors'][:3]}"
        )
    return failures


def note_cpu_hog(path: Path) -> None:
    text = path.read_text()
    first, rest = text.split("\n\n", 1)
    busy = "One core was kept busy by a spinning process all along (`--cpu-hog`)."
    path.write_text(f"{first}\n\n{busy}\n\n{rest}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=SIZES, default="quick")
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--output", help="write the report (Markdown, plus a PNG beside it)")
    parser.add_argument("--logs", help="keep each mode's process logs in this directory")
    parser.add_argument(
        "--no-peer", action="store_true", help="skip the comparison with django-eventstream"
    )
    parser.add_argument(
        "--cpu-hog",
        action="store_true",
        help="keep one core busy with a spinning process all along (a loaded machine)",
    )
    args = parser.parse_args()
    with cpu_hog(args.cpu_hog):
        return run(args)


@contextlib.contextmanager
def cpu_hog(enabled: bool):
    """A process spinning on the CPU meanwhile, when ``enabled``."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if enabled else None
    try:
        yield
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def run(args) -> int:
    processes.raise_open_files_limit()
    size = SIZES[args.size]
    burst_size = replace(size, seconds=END_BURST_SECONDS[args.size], stagger=0)
    results = {}
    for mode in filter(None, args.modes.split(",")):
        if args.logs:
            directory = Path(args.logs) / mode
            directory.mkdir(parents=True, exist_ok=True)
            results[mode] = asyncio.run(run_mode(mode, size, burst_size, directory))
            continue
        with tempfile.TemporaryDirectory() as directory:
            results[mode] = asyncio.run(run_mode(mode, size, burst_size, Path(directory)))
    comparison = None if args.no_peer else run_peer_comparison(args, size)
    from bench.report import render, render_peer, write, write_peer

    print(render(results, args.size, size))
    if comparison:
        print(render_peer(comparison))
    if args.output:
        write(results, args.size, size, Path(args.output))
        if comparison:
            write_peer(comparison, Path(args.output))
        if args.cpu_hog:
            note_cpu_hog(Path(args.output))
    failures = [
        f"{mode} {phase}: {p['lost']} lost, {p['duplicated']} duplicated, "
        f"{p['unfinished']} unfinished"
        for mode, r in results.items()
        for phase, p in (("push", r["push"]), ("end burst", r["end_burst"]))
        if p["lost"] or p["duplicated"] or p["unfinished"]
    ]
    failures += storm_failures(results) + ceiling_failures(results)
    failures += [f for mode, r in results.items() for f in token_failures(mode, r.get("tokens"))]
    if comparison:
        failures += peer_failures(comparison)
    for failure in failures:
        print("LOSS:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
