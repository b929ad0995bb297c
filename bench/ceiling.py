"""The fan-out ceiling of one server process, beside the bare consumer's.

The same subscribers (``executions`` x ``subscribers_per_execution``, all on one
server process) take a ramp of recorded event rates, first from the service,
then from a bare Channels consumer (``bench.bare``) on the same schedule. A
step holds when its p99 is within ``P99_MS``, nothing is lost, and the events
were recorded (published) at no less than ``KEEP_UP`` of the rate asked for;
the ramp stops at the first step that does not. The ceiling is the highest
delivered rate (messages/s, over all subscribers) of a step that held.
"""

import asyncio
import json
import time
from dataclasses import dataclass

import websockets

from bench.measure import collector_paused, stamp_seconds, summary_ms
from bench.schedule import END_EVENTS

P99_MS = 50
KEEP_UP = 0.9


@dataclass(frozen=True)
class CeilingSize:
    executions: int
    subscribers_per_execution: int
    steps: tuple[float, ...]  # recorded events/s over all executions
    seconds: float  # each step's length
    warmup: float  # before a service step's first event: creation and subscribing


def held(step: dict) -> bool:
    return (
        step["p99"] <= P99_MS
        and not step["lost"]
        and not step.get("duplicated")
        and step["recorded_per_second"] >= KEEP_UP * step["target"]
    )


def ceiling_of(steps: list[dict]) -> dict | None:
    good = [s for s in steps if held(s)]
    return max(good, key=lambda s: s["delivered_per_second"]) if good else None


async def ramp(measure_step, size: CeilingSize) -> list[dict]:
    steps = []
    for target in size.steps:
        cpu, wall = time.process_time(), time.monotonic()
        step = {"target": target, **await measure_step(target)}
        # The measuring client's share of one core: near 1, the client was the limit.
        step["client_cpu"] = (time.process_time() - cpu) / (time.monotonic() - wall)
        steps.append(step)
        if not held(step):
            break
    return steps


async def ceiling_phase(deployment, size: CeilingSize, push_phase, size_type) -> dict:
    """Both ramps on one server process; ``push_phase`` and ``size_type`` are the
    service's load and its size (``bench.__main__``)."""
    service = list(deployment.servers)
    deployment.servers = service[:1]

    async def service_step(target: float) -> dict:
        per = size.subscribers_per_execution
        step = size_type(size.executions, per, target, size.seconds, 0, (), 0, size.warmup)
        result = await push_phase(deployment, step, subscribe_to_streams=True)
        return {
            "p50": result["steady"]["p50"],
            "p99": result["steady"]["p99"],
            "lost": result["lost"],
            "duplicated": result["duplicated"],
            "unfinished": result["unfinished"],
            "recorded_per_second": result["recorded_per_second"],
            # Every message counted once per subscriber, over the span it was recorded in.
            "delivered_per_second": result["recorded_per_second"] * per,
        }

    try:
        service_steps = await ramp(service_step, size)
    finally:
        deployment.servers = list(service)
    # start_server adds the bare server to the deployment's list; it is not the service's.
    bare = deployment.start_server("bare-ceiling", app="bench.bare:application", ping_interval=3600)
    deployment.servers = service
    try:
        bare_steps = await ramp(lambda target: bare_step(bare, size, target), size)
    finally:
        bare.stop(crash=True)
    return {"service": service_steps, "bare": bare_steps}


async def bare_step(server, size: CeilingSize, target: float) -> dict:
    """One step on the bare consumer: the same subscribers, groups and schedule."""
    rate = target / size.executions
    count = max(1, int(rate * size.seconds))
    subscribers = size.executions * size.subscribers_per_execution
    latencies: list[float] = []
    sent: list[float] = []
    done = asyncio.Event()
    ready = asyncio.Semaphore(0)
    # A thousand handshakes at once overflow daphne's listen queue and its 5 s
    # handshake timeout, the bare consumer's as much as the service's.
    opening = asyncio.Semaphore(200)

    async def listen(group: int) -> None:
        async with opening:
            socket = await websockets.connect(
                f"{server.ws_url}/bare/{group}",
                max_queue=None,
                ping_interval=None,
                proxy=None,
                open_timeout=60,
            )
        async with socket:
            ready.release()
            while not done.is_set():
                try:
                    frame = await asyncio.wait_for(socket.recv(), 0.5)
                except TimeoutError:
                    continue
                stamp = stamp_seconds(json.loads(frame)["timestamp"])
                latencies.append(time.time() - stamp)
                sent.append(stamp)

    with collector_paused():
        listeners = [
            asyncio.create_task(listen(n // size.subscribers_per_execution))
            for n in range(subscribers)
        ]
        for _ in range(subscribers):
            await ready_or_failed(ready, listeners)
        async with websockets.connect(
            f"{server.ws_url}/publish?groups={size.executions}&rate={rate}&count={count}&stagger=0",
            proxy=None,
        ) as publisher:
            await publisher.recv()
        await asyncio.sleep(0.5)
        done.set()
        await asyncio.gather(*listeners)
    span = max(sent) - min(sent) if len(sent) > 1 else 0.0
    expected = subscribers * (count + END_EVENTS)
    return {
        "p50": summary_ms(latencies)["p50"],
        "p99": summary_ms(latencies)["p99"],
        "lost": expected - len(latencies),
        "recorded_per_second": len(sent) / size.subscribers_per_execution / max(span, 1e-9),
        "delivered_per_second": len(sent) / max(span, 1e-9),
    }


def ceiling_failures(results: dict) -> list[str]:
    """The service's steps that lost, duplicated or left unfinished a stream (the bare
    consumer may lose past its ceiling: its layer drops what it cannot hold)."""
    return [
        f"{mode} ceiling at {s['target']:g} events/s: {s['lost']} lost, "
        f"{s['duplicated']} duplicated, {s['unfinished']} unfinished"
        for mode, r in results.items()
        if r.get("ceiling")
        for s in r["ceiling"]["service"]
        if s["lost"] or s["duplicated"] or s["unfinished"]
    ]


async def ready_or_failed(ready: asyncio.Semaphore, listeners: list[asyncio.Task]) -> None:
    """Wait for one more listener to be connected; raise what a failed one raised."""
    waiting = asyncio.ensure_future(ready.acquire())
    while True:
        done, _ = await asyncio.wait([waiting], timeout=0.5)
        if done:
            return
        for listener in listeners:
            if listener.done() and listener.exception():
                waiting.cancel()
                raise listener.exception()
