"""The reconnect storm: one server restarted under thousands of subscribers.

Every subscriber of the restarted server follows its execution as a client
should: on a lost connection it reconnects with ``?last_seq=`` the last seq it
received, after an exponential backoff with full jitter (a delay drawn
between 0 and ``min(CAP, BASE * 2**attempt)``, the attempt counter reset by an
accepted handshake). It counts every close code it sees and the HTTP status of
every refused handshake, checks its stream message by message (each seq one
more than the last) and, at the end, against the event log read over REST.

Measured for each subscriber: from the moment the server is back (its port
accepts again) to its first message on a new connection, and to its
handshake accepted.
"""

import asyncio
import json
import random
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field

import websockets

from bench.measure import Api, collector_paused, summary_ms

# Backoff with full jitter, seconds.
BASE = 0.1
CAP = 5.0
TERMINAL = ("completed", "failed", "cancelled")
# Seconds the followers have to resume, and then to end once cancelled.
RESUME_TIMEOUT = 120
# Subscribers that open their first socket together.
WAVE = 250


@dataclass(frozen=True)
class StormSize:
    executions: int
    subscribers_per_execution: int
    interval: float  # seconds between two events of one execution
    # At most how long each execution records events; the phase cancels them
    # once every subscriber has resumed.
    seconds: float
    # Embedded mode: the lease a run's claim holds (EXECUTIONS_LEASE_SECONDS);
    # None keeps the service's default.
    embedded_lease: float | None = None


@dataclass
class Follower:
    """What one reconnecting subscriber saw."""

    seqs: list[int] = field(default_factory=list)
    terminal: str = ""
    out_of_order: int = 0  # messages whose seq was not the last one plus one
    close_codes: Counter = field(default_factory=Counter)
    http_statuses: Counter = field(default_factory=Counter)  # of refused handshakes
    unreachable: int = 0  # connection refused or timed out (the server was down)
    failures: Counter = field(default_factory=Counter)  # why handshakes failed
    retried_after_back: int = 0  # handshakes that failed after the server was back
    errors: Counter = field(default_factory=Counter)  # ``error`` messages' texts
    lost_at: float | None = None  # when its connection to the old server ended
    reconnected_at: float | None = None  # handshake accepted after that
    resumed_at: float | None = None  # first message after that


class Clock:
    """When the restarted server went down and came back (epoch seconds)."""

    down_at: float = float("inf")
    back_at: float = float("inf")


async def follow(
    ws_url: str, token: str, execution_id: str, clock: Clock, follower: Follower
) -> None:
    """Follow one stream to its terminal event, reconnecting as a careful client does."""
    headers = {"Authorization": f"Bearer {token}"}
    attempt = 0
    while True:
        last = follower.seqs[-1] if follower.seqs else 0
        url = f"{ws_url}/api/v1/ws/executions/{execution_id}?last_seq={last}"
        accepted = False
        try:
            async with websockets.connect(
                url,
                additional_headers=headers,
                open_timeout=60,
                max_queue=None,
                ping_interval=None,
                proxy=None,
            ) as socket:
                accepted = True
                attempt = 0
                if follower.lost_at is not None and follower.reconnected_at is None:
                    follower.reconnected_at = time.time()
                async for frame in socket:
                    receive(follower, json.loads(frame))
            follower.close_codes[socket.close_code] += 1
        except websockets.ConnectionClosed as closed:
            follower.close_codes[closed.rcvd.code if closed.rcvd else 1006] += 1
        except websockets.InvalidStatus as refused:
            follower.http_statuses[refused.response.status_code] += 1
        except (OSError, TimeoutError, websockets.InvalidHandshake) as failure:
            follower.unreachable += 1
            follower.failures[f"{type(failure).__name__}: {str(failure)[:60]}"] += 1
        if follower.terminal:
            return
        now = time.time()
        if follower.lost_at is None and now >= clock.down_at:
            follower.lost_at = now
        if now >= clock.back_at and not accepted:
            follower.retried_after_back += 1
        await asyncio.sleep(random.uniform(0, min(CAP, BASE * 2**attempt)))
        attempt += 1


def receive(follower: Follower, message: dict) -> None:
    if "seq" not in message:
        if message.get("type") == "error":
            follower.errors[message.get("message", "")[:80]] += 1
        return
    if follower.lost_at is not None and follower.resumed_at is None:
        follower.resumed_at = time.time()
    last = follower.seqs[-1] if follower.seqs else 0
    if message["seq"] != last + 1:
        follower.out_of_order += 1
    follower.seqs.append(message["seq"])
    if message.get("type", "status") == "status" and message["status"] in TERMINAL:
        follower.terminal = message["status"]


def cancel(api: Api, execution_id: str) -> None:
    """Cancel an execution, unless it has ended already (the embedded mode's failed runs)."""
    try:
        api.request("POST", f"/api/v1/executions/{execution_id}/cancel")
    except urllib.error.HTTPError as refused:
        if refused.code != 409:
            raise


async def storm_phase(deployment, size: StormSize) -> dict:
    """Restart the first server under every subscriber; resumes, their times and losses."""
    server = deployment.servers[0]
    api = Api(deployment.servers[-1].url, deployment.token)
    workflow = api.request(
        "POST",
        "/api/v1/workflows",
        {
            "name": "storm",
            "definition": {
                "nodes": [
                    {
                        "id": "emit",
                        "type": "bench_emit",
                        "params": {
                            "count": int(size.seconds / size.interval),
                            "interval": size.interval,
                        },
                    }
                ],
                "edges": [],
            },
        },
    )["id"]
    ids, _ = await api.create_executions(workflow, size.executions)
    per = size.subscribers_per_execution
    await api.wait_started(ids, timeout=120)
    clock = Clock()
    followers = [Follower() for _ in range(size.executions * size.subscribers_per_execution)]
    tasks = []
    with collector_paused():
        # The subscribers arrive a wave at a time: their first connect is the
        # setup, not the measure.
        for start in range(0, len(followers), WAVE):
            tasks += [
                asyncio.create_task(
                    follow(server.ws_url, deployment.token, ids[n // per], clock, follower)
                )
                for n, follower in enumerate(followers[start : start + WAVE], start)
            ]
            await streaming(followers[: len(tasks)], tasks, timeout=120)
        await asyncio.sleep(1)
        clock.down_at = time.time()
        await asyncio.to_thread(server.stop)
        stopped = time.time()
        await asyncio.to_thread(server.start)
        clock.back_at = time.time()
        await resumed(followers, timeout=RESUME_TIMEOUT)
        # Then the executions are ended (cancelled): every stream must end with that.
        await asyncio.gather(*[asyncio.to_thread(cancel, api, e) for e in ids])
        _, pending = await asyncio.wait(tasks, timeout=RESUME_TIMEOUT)
    for task in pending:
        task.cancel()
    logs = await asyncio.gather(*[asyncio.to_thread(api.events, e) for e in ids])
    return {
        **summarize(followers, [logs[n // per] for n in range(len(followers))], clock),
        "unfinished": len(pending),
        "restart_seconds": clock.back_at - clock.down_at,
        "stop_seconds": stopped - clock.down_at,
        "subscribers": len(followers),
        "executions": len(ids),
    }


async def streaming(followers: list[Follower], tasks: list[asyncio.Task], timeout: float) -> None:
    """Wait until every follower has received its first events."""
    deadline = time.monotonic() + timeout
    while not all(f.seqs for f in followers):
        for task in tasks:
            if task.done():
                task.result()  # a follower that gave up: its error
        if time.monotonic() > deadline:
            waiting = sum(not f.seqs for f in followers)
            raise RuntimeError(f"{waiting} subscribers got nothing within {timeout} s")
        await asyncio.sleep(0.2)


async def resumed(followers: list[Follower], timeout: float) -> None:
    """Wait until every follower cut off by the restart has its first message again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(f.resumed_at or f.terminal for f in followers):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)


def summarize(followers: list[Follower], logs: list[list[dict]], clock: Clock) -> dict:
    """Completeness against the stored logs, resume times, and what the clients met."""
    lost = duplicated = incomplete = restarted = 0
    close_codes, statuses, errors, failures = Counter(), Counter(), Counter(), Counter()
    for follower, log in zip(followers, logs, strict=True):
        stored = [event["seq"] for event in log]
        lost += len(set(stored) - set(follower.seqs))
        duplicated += len(follower.seqs) - len(set(follower.seqs))
        terminal = log[-1].get("status") in TERMINAL if log else False
        incomplete += follower.seqs != stored or not terminal or not follower.terminal
        restarted += follower.lost_at is not None
        close_codes.update(follower.close_codes)
        statuses.update(follower.http_statuses)
        errors.update(follower.errors)
        failures.update(follower.failures)
    resumed = [f.resumed_at - clock.back_at for f in followers if f.resumed_at is not None]
    reconnected = [
        f.reconnected_at - clock.back_at for f in followers if f.reconnected_at is not None
    ]
    return {
        "expected": sum(len(log) for log in logs),
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": sum(f.out_of_order for f in followers),
        "incomplete": incomplete,
        "terminal": dict(Counter(f.terminal for f in followers)),
        "restarted": restarted,
        "resumed": len(resumed),
        "first_message": summary_ms(resumed),
        "handshake": summary_ms(reconnected),
        "close_codes": {str(code): n for code, n in sorted(close_codes.items())},
        "http_statuses": {str(code): n for code, n in sorted(statuses.items())},
        "errors": dict(errors.most_common(5)),
        "failures": dict(failures.most_common(5)),
        "retried_after_back": sum(f.retried_after_back for f in followers),
        "unreachable": sum(f.unreachable for f in followers),
    }


def storm_failures(results: dict) -> list[str]:
    """A storm that lost, duplicated or reordered events, left a stream unfinished,
    or met a 1011 or an HTTP 5xx."""
    failures = []
    for mode, r in results.items():
        storm = r.get("storm")
        if not storm:
            continue
        server_errors = storm["close_codes"].get("1011", 0) + sum(
            n for status, n in storm["http_statuses"].items() if status.startswith("5")
        )
        if (
            storm["lost"]
            or storm["duplicated"]
            or storm["out_of_order"]
            or storm["incomplete"]
            or storm["unfinished"]
            or server_errors
        ):
            failures.append(
                f"{mode} storm: {storm['lost']} lost, {storm['duplicated']} duplicated, "
                f"{storm['out_of_order']} out of order, {storm['incomplete']} incomplete, "
                f"{storm['unfinished']} unfinished, {server_errors} 1011 or 5xx"
            )
    return failures
