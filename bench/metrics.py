"""What measuring costs the push: metrics on and off, side by side in one run.

``python -m bench.metrics [--size smoke|quick|full] [--rounds 3]``: each round
starts two embedded servers, one with ``METRICS_ENABLED`` on and one with it
off, each on a database of its own, and gives both the same load at the same
time, so that what else slows the machine slows both alike. While a round
lasts, each ``/metrics`` is scraped every ``scrape`` seconds, as Prometheus
would (the server with metrics off answers 404).

* latency: ``executions`` executions each record ``rate`` events a second
  for ``seconds``, each followed by ``subscribers`` sockets; a message's
  latency is from its ``timestamp`` to its arrival, for the events recorded
  after every socket connected.
* throughput: ``bursts`` executions each record ``burst`` events as fast as
  they can, followed by the same sockets: the events recorded per second,
  the messages delivered per second (first to last), and the server's CPU
  milliseconds per thousand delivered.

Every socket must receive every event once, in order. Output: one JSON
object per run, then the medians over the rounds, on and off, and the cost
of metrics (how much worse on is than off).
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import websockets

from bench import processes
from bench.measure import Api, collector_paused, cpu_seconds, stamp_seconds, summary_ms
from bench.schedule import first_ticks


@dataclass(frozen=True)
class Size:
    executions: int
    subscribers: int  # per execution
    rate: float  # events a second per execution, in the latency case
    seconds: float
    bursts: int  # executions of the throughput case
    burst: int  # events each records as fast as it can
    burst_subscribers: int  # sockets per execution of the throughput case
    scrape: float  # seconds between scrapes


SIZES = {
    "smoke": Size(2, 2, 10, 2, 2, 200, 2, 1),
    "quick": Size(10, 5, 10, 8, 4, 1000, 10, 5),
    # The latency case as the main benchmark's full size: 1,000 sockets over 100
    # executions, 100 events/s; the throughput case sends each event to 20 sockets,
    # so that the sends, not the recording, take the server's time.
    "full": Size(100, 10, 1, 30, 10, 1000, 20, 15),
}
ENV = {
    **processes.UNLIMITED_EMITTER_ENV,
    "METRICS_ALLOWED_ADDRESSES": "127.0.0.1",
    # One client reads both servers' bursts: it falls behind, and must not be cut off.
    "REALTIME_SEND_TIMEOUT": "120",
}
MODES = {"on": "1", "off": "0"}


@dataclass
class Seen:
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    recorded: list[float] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)


async def follow(url: str, token: str, seen: Seen, opened: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(
        url, additional_headers=headers, max_size=None, max_queue=None, ping_interval=None
    ) as socket:
        opened.set()
        async for frame in socket:
            arrived = time.time()
            message = json.loads(frame)
            if isinstance(message.get("seq"), int):
                recorded = stamp_seconds(message["timestamp"])
                seen.seqs.append(message["seq"])
                seen.recorded.append(recorded)
                seen.arrived.append(arrived)
                seen.latencies.append(arrived - recorded)


def emitting(api: Api, count: int, interval: float) -> str:
    node = {"id": "emit", "type": "bench_emit", "params": {"count": count, "interval": interval}}
    body = {"name": "metrics", "definition": {"nodes": [node], "edges": []}}
    return api.request("POST", "/api/v1/workflows", body)["id"]


async def followed(
    server: processes.Server,
    token: str,
    executions: int,
    subscribers: int,
    count: int,
    interval: float,
):
    """``executions`` executions that start recording in a moment, their ticks spread
    evenly over one interval, each followed by ``subscribers`` sockets to its end:
    the moment, the ids and what each socket saw."""
    api = Api(server.url, token)
    workflow = emitting(api, count, interval)
    start_at = time.time() + 3 + executions * subscribers * 0.01
    offsets = first_ticks(executions, interval, interval) if interval else [0.0] * executions
    ids, _ = await api.create_executions(
        workflow, executions, [{"start_at": start_at + offset} for offset in offsets]
    )
    seen = [Seen() for _ in range(executions * subscribers)]
    openings = [asyncio.Event() for _ in seen]
    tasks = [
        asyncio.create_task(
            follow(
                f"{server.ws_url}/api/v1/ws/executions/{ids[i // subscribers]}?last_seq=0",
                token,
                seen[i],
                openings[i],
            )
        )
        for i in range(len(seen))
    ]
    await asyncio.wait_for(asyncio.gather(*[o.wait() for o in openings]), 60)
    return api, start_at, ids, seen, tasks


def incomplete(api: Api, ids: list[str], seen: list[Seen], subscribers: int) -> int:
    """Sockets that did not receive every stored event once, in order."""
    stored = {i: [e["seq"] for e in api.events(i)] for i in ids}
    return sum(s.seqs != stored[ids[n // subscribers]] for n, s in enumerate(seen))


async def latency_case(server: processes.Server, token: str, size: Size) -> dict:
    api, start_at, ids, seen, tasks = await followed(
        server,
        token,
        size.executions,
        size.subscribers,
        int(size.rate * size.seconds),
        1 / size.rate,
    )
    await asyncio.wait_for(asyncio.gather(*tasks), size.seconds + 60)
    live = [
        latency
        for s in seen
        for latency, recorded in zip(s.latencies, s.recorded, strict=True)
        if recorded >= start_at
    ]
    return {
        "sockets": len(seen),
        "incomplete": incomplete(api, ids, seen, size.subscribers),
        "latency_ms": summary_ms(live),
    }


async def throughput_case(server: processes.Server, token: str, size: Size) -> dict:
    api, start_at, ids, seen, tasks = await followed(
        server, token, size.bursts, size.burst_subscribers, size.burst, 0
    )
    pid = server.process.pid
    await asyncio.sleep(max(0.0, start_at - time.time() - 0.2))
    cpu = cpu_seconds([pid])
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    cpu = cpu_seconds([pid]) - cpu
    arrived = [a for s in seen for a, r in zip(s.arrived, s.recorded, strict=True) if r >= start_at]
    # Each execution's events once: as its first socket saw them.
    firsts = seen[:: size.burst_subscribers]
    moments = [r for s in firsts for r in s.recorded if r >= start_at]
    return {
        "sockets": len(seen),
        "incomplete": incomplete(api, ids, seen, size.burst_subscribers),
        "recorded_per_second": len(moments) / max(max(moments) - min(moments), 1e-9),
        "delivered_per_second": len(arrived) / max(max(arrived) - min(arrived), 1e-9),
        "server_cpu_ms_per_1000": cpu * 1000 / max(len(arrived), 1) * 1000,
    }


def scrape_status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


async def scraping(url: str, every: float, answers: list[int]) -> None:
    """Scrape ``url`` every ``every`` seconds until cancelled; each answer's status."""
    while True:
        status, _ = await asyncio.to_thread(scrape_status, url)
        answers.append(status)
        await asyncio.sleep(every)


async def one_round(deployments: dict, number: int, size: Size) -> list[dict]:
    """One round: a server with metrics on and one with them off, each on a database
    of its own, take the same load at the same time, so that whatever else slows
    the machine meanwhile slows both."""
    order = list(MODES) if number % 2 else list(reversed(MODES))
    servers = {
        mode: processes.Server(
            port=processes.free_port(),
            env={**deployments[mode].env, "METRICS_ENABLED": MODES[mode]},
            log=deployments[mode].logs / f"server-{mode}-{number}.log",
            # A client behind on a burst answers pings late: no pings to time out.
            ping_interval=3600,
        )
        for mode in order
    }
    answers: dict[str, list[int]] = {mode: [] for mode in order}
    scrapers = []
    try:
        for mode in order:
            servers[mode].start()
            url = f"{servers[mode].url}/metrics"
            scrapers.append(asyncio.create_task(scraping(url, size.scrape, answers[mode])))

        async def both(case) -> dict:
            with collector_paused():
                found = await asyncio.gather(
                    *(case(servers[mode], deployments[mode].token, size) for mode in order)
                )
            return dict(zip(order, found, strict=True))

        latency = await both(latency_case)
        throughput = await both(throughput_case)
        for scraper in scrapers:
            scraper.cancel()
        pages = {}
        for mode in order:
            status, pages[mode] = await asyncio.to_thread(
                scrape_status, f"{servers[mode].url}/metrics"
            )
            answers[mode].append(status)
    finally:
        for scraper in scrapers:
            scraper.cancel()
        for server in servers.values():
            server.stop()
    return [
        {
            "mode": mode,
            "round": number,
            "latency": latency[mode],
            "throughput": throughput[mode],
            "scrapes": {str(code): answers[mode].count(code) for code in set(answers[mode])},
            "pushes_measured": pushes_measured(pages[mode]),
        }
        for mode in order
    ]


def pushes_measured(page: str) -> float:
    """The live events the server's page counted in its push latency."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("workflows_push_latency_seconds_count")
    )


async def run_rounds(size: Size, rounds: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as directory:
        deployments = {}
        for mode in MODES:
            (Path(directory) / mode).mkdir()
            deployments[mode] = processes.embedded(Path(directory) / mode, **ENV)
            for server in deployments[mode].servers:
                server.stop()
            deployments[mode].servers = []
        runs = []
        try:
            for number in range(1, rounds + 1):
                for run in await one_round(deployments, number, size):
                    print(json.dumps(run), flush=True)
                    runs.append(run)
        finally:
            for deployment in deployments.values():
                deployment.stop()
        return runs


# (label, path in a run, True when more is better)
FIGURES = (
    ("p50 latency, ms", ("latency", "latency_ms", "p50"), False),
    ("p99 latency, ms", ("latency", "latency_ms", "p99"), False),
    ("events recorded per second", ("throughput", "recorded_per_second"), True),
    ("messages delivered per second", ("throughput", "delivered_per_second"), True),
    ("server CPU ms per 1,000 delivered", ("throughput", "server_cpu_ms_per_1000"), False),
)


def figure(run: dict, path: tuple[str, ...]) -> float:
    value = run
    for key in path:
        value = value[key]
    return value


def costs(runs: list[dict], path: tuple[str, ...], more_is_better: bool) -> list[float]:
    """Each round's cost of metrics: how much worse its run with them on is than its
    run with them off (paired, so that what drifts between rounds cancels)."""
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["mode"]] = figure(run, path)
    found = []
    for pair in by_round.values():
        on, off = pair["on"], pair["off"]
        found.append((off / on - 1) if more_is_better else (on / off - 1))
    return found


def table(runs: list[dict]) -> str:
    rows = [
        "| | metrics on (median) | metrics off (median) | cost of metrics, each round |"
        " cost of metrics (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, path, more_is_better in FIGURES:
        on = statistics.median(figure(r, path) for r in runs if r["mode"] == "on")
        off = statistics.median(figure(r, path) for r in runs if r["mode"] == "off")
        each = costs(runs, path, more_is_better)
        rounds = ", ".join(f"{cost * 100:+.1f}%" for cost in each)
        rows.append(
            f"| {label} | {on:.1f} | {off:.1f} | {rounds} | {statistics.median(each) * 100:+.1f}% |"
        )
    return "\n".join(rows)


def failures(runs: list[dict]) -> list[str]:
    found = []
    for run in runs:
        name = f"metrics {run['mode']}, round {run['round']}"
        for case in ("latency", "throughput"):
            if run[case]["incomplete"]:
                found.append(f"{name}: {run[case]['incomplete']} sockets incomplete ({case})")
        scraped = run["scrapes"].get("200" if run["mode"] == "on" else "404", 0)
        if not scraped or len(run["scrapes"]) != 1:
            found.append(f"{name}: scrapes answered {run['scrapes']}")
        if (run["pushes_measured"] > 0) != (run["mode"] == "on"):
            found.append(f"{name}: {run['pushes_measured']} pushes measured")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    processes.raise_open_files_limit()
    runs = asyncio.run(run_rounds(SIZES[args.size], args.rounds))
    print(table(runs))
    bad = failures(runs)
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
