"""Many executions on few sockets, beside one socket each; and the executions feed.

    python -m bench.multiplex --mode embedded --runs 3
    python -m bench.multiplex --mode distributed --size quick

Three cases, each on a fresh deployment with one server process:

* ``multiplexed``: EXECUTIONS running executions followed over SOCKETS
  ``/api/v1/ws`` sockets (each subscribing to its share from ``last_seq=0``);
* ``per-execution``: the same executions and load, one
  ``/api/v1/ws/executions/{id}`` socket each;
* ``feed``: FEEDS feed subscribers while FEED_EXECUTIONS executions are
  created, run and end.

For the first two, once the runners have started every execution: latency
(receive time minus the event's ``timestamp``) of
the events recorded after their subscription's first message arrived, events lost or
duplicated against each log, and the server's memory per subscription: half
the subscriptions are made, then the other half, and the RSS growth of the
second half, over its subscriptions, is what one more costs (the growth from
before the first, over all of them, is shown too: it includes what the first
ones set up once, such as database threads and connections). For the feed: from each state's event
being recorded (the ``timestamp`` of its ``last_seq``) to the feed message,
and every execution's final state delivered to every subscriber. The
creations are one transaction, stamped as it begins; another connection
watches for its commit (asking every millisecond), and the figures "from
commit" time the creations from then.
"""

import argparse
import asyncio
import json
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import websockets

from bench import processes
from bench.measure import Api, collector_paused, percentile, rss_kib, stamp_seconds

EXTRA = {
    "EXTRA_INSTALLED_APPS": "bench.emitter",
    "REALTIME_MAX_SOCKETS_PER_USER": "100000",
    "REALTIME_HANDSHAKE_RATE": "",
    "API_EXECUTION_CREATE_RATE": "",
    "EXECUTIONS_MAX_ACTIVE_PER_USER": "0",
}


@dataclass(frozen=True)
class Size:
    executions: int
    sockets: int
    ticks: int
    interval: float  # seconds between one execution's ticks
    feeds: int
    feed_executions: int


SIZES = {
    "quick": Size(100, 4, 3, 1.0, 3, 20),
    "full": Size(1000, 10, 6, 5.0, 10, 100),
}
# Seconds from creating the executions to their first tick: time to subscribe.
WARMUP = {"quick": 15.0, "full": 60.0}
# The server's memory is read once it stops growing by itself (the executions
# it just started settle in): growth under SETTLED_KIB a second, SETTLED_SECONDS
# in a row.
SETTLED_KIB = 50
SETTLED_SECONDS = 3


@dataclass
class Followed:
    seqs: dict[str, list[int]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    live_since: dict[str, float] = field(default_factory=dict)


def deploy(mode: str, directory: Path) -> processes.Deployment:
    if mode == "embedded":
        return processes.embedded(directory, **EXTRA)
    return processes.distributed(directory, servers=1, workers=2, worker_concurrency=600, **EXTRA)


def emitting(api: Api, size: Size) -> str:
    definition = {
        "nodes": [
            {
                "id": "emit",
                "type": "bench_emit",
                "params": {"count": size.ticks, "interval": size.interval},
            }
        ],
        "edges": [],
    }
    body = {"name": "multiplexed", "definition": definition}
    return api.request("POST", "/api/v1/workflows", body)["id"]


def create_batch(api: Api, workflow: str, inputs: list[dict]) -> list[str]:
    ids = []
    for start in range(0, len(inputs), 500):
        items = [{"workflow_id": workflow, "input_data": i} for i in inputs[start : start + 500]]
        ids += [
            r["id"]
            for r in api.request("POST", "/api/v1/executions/batch", {"items": items})["results"]
        ]
    return ids


def running_by(api: Api, expected: int, until: float) -> bool:
    """Whether the runners have started all ``expected`` executions by ``until``
    (asked twice a second): the case follows running executions, and a start
    burst overlapping the subscribing would time the burst instead."""
    while time.time() < until:
        if api.request("GET", "/api/v1/executions?status=running")["count"] >= expected:
            return True
        time.sleep(0.5)
    return False


async def settled_rss(pid: int, until: float) -> int:
    """The process's RSS once it grew less than SETTLED_KIB a second for SETTLED_SECONDS
    in a row (or at ``until``)."""
    last, calm = rss_kib(pid), 0
    while time.time() < until and calm < SETTLED_SECONDS:
        await asyncio.sleep(1)
        now = rss_kib(pid)
        calm = calm + 1 if now - last < SETTLED_KIB else 0
        last = now
    return last


def receive_event(followed: Followed, message: dict) -> None:
    """Count ``message``; time it if it was recorded after its subscription's first
    message arrived (what was recorded before came with the snapshot or resume,
    whose time is the subscribing's, not the push's)."""
    now = time.time()
    execution_id = message["execution_id"]
    if execution_id not in followed.live_since:
        followed.live_since[execution_id] = now
    followed.seqs.setdefault(execution_id, []).append(message["seq"])
    recorded = stamp_seconds(message["timestamp"])
    if recorded > followed.live_since[execution_id]:
        followed.latencies.append(now - recorded)


async def follow_multiplexed(
    deployment, ids: list[str], sockets: int, followed: Followed, opened, second_half
):
    headers = {"Authorization": f"Bearer {deployment.token}"}
    # The first half of ``ids`` first (what the caller counts), shared out.
    first, second = ids[: len(ids) // 2], ids[len(ids) // 2 :]
    shares = [(first[n::sockets], second[n::sockets]) for n in range(sockets)]

    async def one(halves: tuple[list[str], list[str]]) -> None:
        async with websockets.connect(
            f"{deployment.servers[0].ws_url}/api/v1/ws",
            additional_headers=headers,
            max_queue=None,
            ping_interval=None,
            open_timeout=120,
        ) as socket:

            async def subscribe(execution_ids: list[str]) -> None:
                for execution_id in execution_ids:
                    message = {"type": "subscribe", "execution_id": execution_id, "last_seq": 0}
                    await socket.send(json.dumps(message))

            await subscribe(halves[0])
            subscribing = asyncio.create_task(second_half.wait())
            subscribing.add_done_callback(lambda _: asyncio.create_task(subscribe(halves[1])))
            waiting, started = {*halves[0], *halves[1]}, set()
            while waiting:
                message = json.loads(await socket.recv())
                if message["type"] == "unsubscribed":
                    waiting.discard(message["execution_id"])
                elif message["type"] == "error":
                    raise RuntimeError(f"refused: {message}")
                elif "seq" in message:
                    receive_event(followed, message)
                    if message["execution_id"] not in started:
                        started.add(message["execution_id"])
                        opened.release()

    await asyncio.gather(*(one(share) for share in shares))


async def follow_each(deployment, ids: list[str], followed: Followed, opened, second_half):
    headers = {"Authorization": f"Bearer {deployment.token}"}
    half = set(ids[: len(ids) // 2])

    async def one(execution_id: str) -> None:
        if execution_id not in half:
            await second_half.wait()
        url = f"{deployment.servers[0].ws_url}/api/v1/ws/executions/{execution_id}?last_seq=0"
        async with websockets.connect(
            url, additional_headers=headers, max_queue=None, ping_interval=None, open_timeout=120
        ) as socket:
            first = True
            async for frame in socket:
                receive_event(followed, json.loads(frame))
                if first:
                    first = False
                    opened.release()
        if socket.close_code != 1000:
            raise RuntimeError(f"closed with {socket.close_code}")

    await asyncio.gather(*(one(execution_id) for execution_id in ids))


async def streams_case(mode: str, size: Size, warmup: float, multiplexed: bool) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="bench-multiplex-"))
    deployment = deploy(mode, directory)
    try:
        api = Api(deployment.servers[0].url, deployment.token)
        workflow = emitting(api, size)
        start_at = time.time() + warmup
        offsets = [size.interval * n / size.executions for n in range(size.executions)]
        ids = await asyncio.to_thread(
            create_batch, api, workflow, [{"start_at": start_at + o} for o in offsets]
        )
        pid = deployment.servers[0].process.pid
        started = await asyncio.to_thread(running_by, api, len(ids), start_at - 20)
        before = await settled_rss(pid, until=start_at - 15)
        followed = Followed()
        opened, second_half = asyncio.Semaphore(0), asyncio.Event()
        half = len(ids) // 2
        with collector_paused():
            follow = (
                follow_multiplexed(deployment, ids, size.sockets, followed, opened, second_half)
                if multiplexed
                else follow_each(deployment, ids, followed, opened, second_half)
            )
            task = asyncio.create_task(follow)
            for _ in range(half):
                await opened.acquire()
            await asyncio.sleep(2)
            middle = rss_kib(pid)
            second_half.set()
            for _ in range(len(ids) - half):
                await opened.acquire()
            subscribed = time.time()
            await asyncio.sleep(2)
            after = rss_kib(pid)
            await task
        heads = {}
        for execution_id in ids:
            events = api.request("GET", f"/api/v1/executions/{execution_id}/events?limit=1000")
            heads[execution_id] = events["results"][-1]["seq"]
        lost = sum(len(set(range(1, heads[i] + 1)) - set(followed.seqs.get(i, ()))) for i in ids)
        duplicated = sum(len(s) - len(set(s)) for s in followed.seqs.values())
        return {
            "case": "multiplexed" if multiplexed else "per-execution",
            "sockets": size.sockets if multiplexed else size.executions,
            "subscriptions": len(ids),
            "late_start": subscribed > start_at or not started,
            "messages": sum(len(s) for s in followed.seqs.values()),
            "expected": sum(heads.values()),
            "lost": lost,
            "duplicated": duplicated,
            "p50_ms": percentile(followed.latencies, 0.5) * 1000,
            "p99_ms": percentile(followed.latencies, 0.99) * 1000,
            "max_ms": max(followed.latencies, default=float("nan")) * 1000,
            # The second half's growth: what one more costs, without what the
            # first ones set up once (threads, connections, caches).
            "kib_per_subscription": (after - middle) / (len(ids) - half),
            "kib_per_subscription_all": (after - before) / len(ids),
        }
    finally:
        deployment.stop()


FINAL_STATUSES = ("completed", "failed", "cancelled")


def commit_seen(database_url: str, workflow_id: str, count: int, stop: threading.Event) -> float:
    """When another connection first saw ``count`` executions of the workflow
    (their batch's commit), asking every millisecond until ``stop``; NaN if never."""
    query = "SELECT COUNT(*) FROM executions_execution WHERE workflow_id = {}"
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        query, key = query.format("?"), workflow_id.replace("-", "")
    else:
        connection = psycopg.connect(database_url, autocommit=True)
        query, key = query.format("%s"), workflow_id
    try:
        while not stop.is_set():
            if connection.execute(query, (key,)).fetchone()[0] >= count:
                return time.time()
            time.sleep(0.001)
        return float("nan")
    finally:
        connection.close()


class Decoded:
    """A subscriber's frames, decoded as far as they have been asked for."""

    def __init__(self, frames: list[tuple[float, str]]) -> None:
        self.frames, self.done, self.decoded = frames, 0, []

    def states(self) -> list[tuple[float, dict]]:
        """The feed's ``execution`` states received so far, with their receive times."""
        for at, frame in self.frames[self.done :]:
            message = json.loads(frame)
            if message["type"] == "execution":
                self.decoded.append((at, message["execution"]))
        self.done = len(self.frames)
        return self.decoded


def ended_in(messages: list[tuple[float, dict]]) -> set[str]:
    """The executions a feed's messages showed ended."""
    return {state["id"] for _, state in messages if state["status"] in FINAL_STATUSES}


async def feed_case(mode: str, size: Size) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    deployment = deploy(mode, directory)
    try:
        api = Api(deployment.servers[0].url, deployment.token)
        definition = {
            "nodes": [{"id": "d", "type": "delay", "params": {"seconds": 1}}],
            "edges": [],
        }
        workflow = api.request(
            "POST", "/api/v1/workflows", {"name": "fed", "definition": definition}
        )["id"]
        headers = {"Authorization": f"Bearer {deployment.token}"}
        # Each subscriber's frames with their receive times, decoded afterwards:
        # decoding 1,000 frames as they arrive would time the measuring client.
        frames: list[list[tuple[float, str]]] = [[] for _ in range(size.feeds)]
        ready = asyncio.Semaphore(0)
        sockets = []

        async def subscriber(index: int) -> None:
            async with websockets.connect(
                f"{deployment.servers[0].ws_url}/api/v1/ws",
                additional_headers=headers,
                max_queue=None,
                ping_interval=None,
            ) as socket:
                sockets.append(socket)
                await socket.send(json.dumps({"type": "subscribe", "feed": "executions"}))
                ready.release()
                kept = frames[index]
                try:
                    async for frame in socket:
                        kept.append((time.time(), frame))
                except websockets.ConnectionClosed:
                    pass

        with collector_paused():
            tasks = [asyncio.create_task(subscriber(n)) for n in range(size.feeds)]
            for _ in tasks:
                await ready.acquire()
            await asyncio.sleep(1)
            started = time.time()
            stop = threading.Event()
            watching = asyncio.create_task(
                asyncio.to_thread(
                    commit_seen,
                    deployment.env["DATABASE_URL"],
                    workflow,
                    size.feed_executions,
                    stop,
                )
            )
            ids = await asyncio.to_thread(create_batch, api, workflow, [{}] * size.feed_executions)
            stop.set()
            committed = await watching
            # Every feed tells when the executions end: polling the server for
            # that would load it while it is being measured.
            received = [Decoded(kept) for kept in frames]
            deadline = time.time() + 120
            while time.time() < deadline and not all(
                ended_in(decoded.states()) >= set(ids) for decoded in received
            ):
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)  # the last changes reach the feeds
            for socket in sockets:
                await socket.close()
            await asyncio.gather(*tasks)
        received = [decoded.states() for decoded in received]
        recorded, finals = {}, {}
        for execution_id in ids:
            events = api.request("GET", f"/api/v1/executions/{execution_id}/events?limit=1000")
            for event in events["results"]:
                recorded[(execution_id, event["seq"])] = stamp_seconds(event["timestamp"])
            detail = api.request("GET", f"/api/v1/executions/{execution_id}")
            if detail["status"] in FINAL_STATUSES:
                finals[execution_id] = events["results"][-1]["seq"]
        latencies, from_commit, missing = [], [], 0
        by_status: dict[str, list[float]] = {}
        for messages in received:
            kept = {}
            for at, state in messages:
                key = (state["id"], state["last_seq"])
                if key in recorded and recorded[key] >= started:
                    latencies.append(at - recorded[key])
                    by_status.setdefault(state["status"], []).append(at - recorded[key])
                    # A creation's commit was seen; a later change commits as it is recorded.
                    from_commit.append(at - (committed if key[1] == 1 else recorded[key]))
                kept[state["id"]] = max(kept.get(state["id"], 0), state["last_seq"])
            missing += sum(1 for i in ids if kept.get(i) != finals.get(i))
        created = [recorded[(i, 1)] for i in ids if (i, 1) in recorded]
        return {
            "case": "feed",
            # The creations are one transaction: its events are stamped before it commits.
            "creation_stamps_spread_ms": (max(created) - min(created)) * 1000,
            "feeds": size.feeds,
            "executions": len(ids),
            "messages": sum(len(m) for m in received),
            "final_states_missing": missing,
            "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": max(latencies, default=float("nan")) * 1000,
            "creations_commit_after_stamp_ms": (committed - min(created, default=committed)) * 1000,
            "from_commit_p50_ms": percentile(from_commit, 0.5) * 1000,
            "from_commit_p99_ms": percentile(from_commit, 0.99) * 1000,
            "p99_ms_by_status": {
                status: round(percentile(values, 0.99) * 1000, 1)
                for status, values in sorted(by_status.items())
            },
        }
    finally:
        deployment.stop()


async def run_once(mode: str, size_name: str) -> list[dict]:
    size, warmup = SIZES[size_name], WARMUP[size_name]
    results = [
        await streams_case(mode, size, warmup, multiplexed=True),
        await streams_case(mode, size, warmup, multiplexed=False),
        await feed_case(mode, size),
    ]
    many, each = results[0], results[1]
    many["memory_vs_per_execution"] = many["kib_per_subscription"] / max(
        each["kib_per_subscription"], 1e-9
    )
    return results


def failures(results: list[dict]) -> list[str]:
    """What no run may show: a loss, a duplicate, a final state not delivered."""
    found = []
    for result in results:
        if result.get("lost") or result.get("duplicated") or result.get("final_states_missing"):
            found.append(f"{result['case']}: {result}")
    return found


def main() -> int:
    processes.raise_open_files_limit()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    problems = []
    for run in range(1, args.runs + 1):
        results = asyncio.run(run_once(args.mode, args.size))
        for result in results:
            shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
            print(f"run {run} {args.mode}: {shown}", flush=True)
        problems += failures(results)
    for problem in problems:
        print("FAILED:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
