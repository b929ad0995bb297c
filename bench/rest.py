"""REST create latency under the benchmark's load, and batch creates against single ones.

    python -m bench.rest --modes embedded,distributed --runs 3
    python -m bench.rest --modes embedded --batch 1000

Per run it starts a deployment as ``python -m bench`` does, then:

* ``start``: the benchmark's own measure, 100 creates from 8 client threads
  while nothing else runs yet (``Api.create_executions``);
* puts the full load on: those 100 executions record 100 events/s in all,
  10 subscribers follow each (1,000 sockets);
* ``paced``: under that load, creates from one client, 5 a second;
* ``burst``: under that load, 100 creates from 8 client threads.

With ``--batch N`` it instead times N single creates (from 8 client threads)
against one ``POST /api/v1/executions/batch`` of N, on an idle deployment.
"""

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import processes
from bench.measure import Api, percentile, subscribe
from bench.schedule import first_ticks

EXTRA = {
    "EXTRA_INSTALLED_APPS": "bench.emitter",
    "REALTIME_MAX_SOCKETS_PER_USER": "100000",
    "API_EXECUTION_CREATE_RATE": "",
    "EXECUTIONS_MAX_ACTIVE_PER_USER": "0",
}
EXECUTIONS, SUBSCRIBERS, TICKS, WARMUP = 100, 10, 30, 12
PACED, PACED_INTERVAL = 60, 0.2
PROFILE: Path | None = None


def workflow(api: Api, name: str, node: dict) -> str:
    body = {"name": name, "definition": {"nodes": [node], "edges": []}}
    return api.request("POST", "/api/v1/workflows", body)["id"]


def profile(server, directory: Path) -> subprocess.Popen:
    """py-spy on one server for the paced and burst creates (``--profile DIR``)."""
    PROFILE.mkdir(parents=True, exist_ok=True)
    out = PROFILE / f"{directory.name}-{server.port}.txt"
    command = ["py-spy", "record", "--pid", str(server.process.pid), "--duration", "20"]
    command += ["--rate", "200", "--format", "raw", "--threads", "--idle", "-o", str(out)]
    return subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def ms(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5) * 1000, 1),
        "p99": round(percentile(values, 0.99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


async def paced_creates(api: Api, workflow_id: str) -> list[float]:
    latencies = []
    for _ in range(PACED):
        started = time.monotonic()
        seconds, _ = await asyncio.to_thread(
            api.timed, "POST", "/api/v1/executions", {"workflow_id": workflow_id}
        )
        latencies.append(seconds)
        await asyncio.sleep(max(0.0, PACED_INTERVAL - (time.monotonic() - started)))
    return latencies


async def under_load(deployment) -> dict:
    api = Api(deployment.servers[0].url, deployment.token)
    emit = workflow(
        api, "load", {"id": "emit", "type": "bench_emit", "params": {"count": TICKS, "interval": 1}}
    )
    probe = workflow(api, "probe", {"id": "wait", "type": "delay", "params": {"seconds": 0.5}})
    first_tick = time.time() + WARMUP
    inputs = [{"start_at": first_tick + offset} for offset in first_ticks(EXECUTIONS, 1.0, 0)]
    ids, start = await api.create_executions(emit, EXECUTIONS, inputs)
    await api.wait_started(ids)
    subscribers = [
        asyncio.create_task(
            subscribe(
                deployment.servers[(e + s) % len(deployment.servers)].ws_url,
                deployment.token,
                f"/api/v1/ws/executions/{execution_id}?last_seq=0",
            )
        )
        for e, execution_id in enumerate(ids)
        for s in range(SUBSCRIBERS)
    ]
    await asyncio.sleep(max(0.0, first_tick + 3 - time.time()))
    profilers = [profile(server, deployment.logs) for server in deployment.servers if PROFILE]
    paced = await paced_creates(api, probe)
    _, burst = await api.create_executions(probe, 100)
    for profiler in profilers:
        profiler.wait()
    under = time.time() < first_tick + TICKS
    streams = await asyncio.gather(*subscribers)
    return {
        "start": ms(start),
        "paced": ms(paced),
        "burst": ms(burst),
        "all under load": under,
        "completed streams": sum(s.last_status == "completed" for s in streams),
    }


async def batch_against_single(deployment, count: int) -> dict:
    api = Api(deployment.servers[0].url, deployment.token)
    probe = workflow(api, "probe", {"id": "wait", "type": "delay", "params": {"seconds": 0.1}})
    started = time.perf_counter()
    await api.create_executions(probe, count)
    single = time.perf_counter() - started
    await asyncio.sleep(5)  # let those runs end
    items = [{"workflow_id": probe} for _ in range(count)]
    batch, results = await asyncio.to_thread(
        api.timed, "POST", "/api/v1/executions/batch", {"items": items}
    )
    assert len(results["results"]) == count, results
    return {"single creates (8 threads), s": round(single, 3), "one batch, s": round(batch, 3)}


async def run(mode: str, directory: Path, batch: int) -> dict:
    deploy = processes.embedded if mode == "embedded" else processes.distributed
    deployment = deploy(directory, **EXTRA)
    try:
        if batch:
            return await batch_against_single(deployment, batch)
        return await under_load(deployment)
    finally:
        deployment.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=0, help="time a batch of N instead")
    parser.add_argument("--profile", help="py-spy the servers under load into this directory")
    args = parser.parse_args()
    global PROFILE
    PROFILE = Path(args.profile) if args.profile else None
    for number in range(1, args.runs + 1):
        for mode in args.modes.split(","):
            with tempfile.TemporaryDirectory() as directory:
                result = asyncio.run(run(mode, Path(directory), args.batch))
            print(json.dumps({"run": number, "mode": mode, **result}), flush=True)


if __name__ == "__main__":
    main()
