"""Server memory per idle socket on ONE server process, in either mode.

    python -m bench.memory --mode embedded --sockets 2000,10000 --runs 3
    python -m bench.memory --mode distributed --sockets 2000 --probe

Like ``bench.__main__.idle_phase``: one execution that waits an hour, N
sockets that read its snapshot and stay open; the server's RSS before and
2 s after they are open, per socket. ``--probe`` serves
``bench.memprobe_app`` under ``PYTHONTRACEMALLOC`` and prints where the
memory went (tracemalloc by line, live objects by type), before vs after.
"""

import argparse
import asyncio
import os
import pickle
import resource
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bench import processes
from bench.measure import Api, hold_idle, rss_kib

EXTRA = {
    "EXTRA_INSTALLED_APPS": "bench.emitter",
    "REALTIME_MAX_SOCKETS_PER_USER": "100000",
    "REALTIME_HANDSHAKE_RATE": "",
    # The clients send no pings of their own; opening 10,000 takes a while.
    "REALTIME_IDLE_TIMEOUT": "3600",
    "API_EXECUTION_CREATE_RATE": "",
    "EXECUTIONS_MAX_ACTIVE_PER_USER": "0",
}
APP = "bench.memprobe_app:application"


def raise_fd_limit() -> None:
    """Children (the server) inherit it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def deploy(mode: str, directory: Path, env: dict) -> processes.Deployment:
    if mode == "embedded":
        database = f"sqlite:///{directory / 'db.sqlite3'}"
        deployment = processes.Deployment(
            env=processes.base_env(DATABASE_URL=database, **env), logs=directory
        )
        deployment.token = processes.demo_token(deployment.env)
    else:
        deployment = processes.distributed(directory, servers=0, workers=1, **env)
    try:
        deployment.start_server("server", app=APP)
    except BaseException:
        deployment.stop()
        raise
    return deployment


def probe(pid: int, directory: Path, number: int) -> None:
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 600
    while not (directory / f"probe-{number}.done").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not answer the probe")
        time.sleep(0.2)


def report_probe(directory: Path, sockets: int) -> None:
    before = Counter(pickle.loads((directory / "types-1.pickle").read_bytes()))
    after = Counter(pickle.loads((directory / "types-2.pickle").read_bytes()))
    grown = after.copy()
    grown.subtract(before)
    print(f"\nlive objects by type, per socket (gc.get_objects; {sockets} sockets):")
    for name, count in grown.most_common(45):
        print(f"  {count / sockets:8.2f}  {name}")
    first = directory / "trace-1.snapshot"
    if not first.exists():
        return
    old = tracemalloc.Snapshot.load(str(first))
    new = tracemalloc.Snapshot.load(str(directory / "trace-2.snapshot"))
    for key, rows in (("filename", 25), ("lineno", 60)):
        stats = new.compare_to(old, key)
        total = sum(s.size_diff for s in stats)
        print(f"\ntracemalloc by {key}: {total / sockets / 1024:.2f} KiB per socket in all")
        for stat in stats[:rows]:
            frame = stat.traceback[0]
            where = frame.filename.split("site-packages/")[-1].split("/memory/")[-1]
            where += f":{frame.lineno}" if key == "lineno" else ""
            print(
                f"  {stat.size_diff / sockets:9.1f} B  {stat.count_diff / sockets:6.2f} blocks  "
                f"{where}"
            )


async def measure(deployment, sockets: int) -> dict:
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
    await api.wait_started([execution_id])
    path = f"/api/v1/ws/executions/{execution_id}"
    ws_url = deployment.servers[0].ws_url
    pid = deployment.servers[0].process.pid
    probing = "MEMPROBE_DIR" in deployment.env
    # One socket first: what only the first one costs (imports, caches) is not counted.
    warm = await hold_idle(ws_url, deployment.token, path, 1)
    await asyncio.sleep(2)
    if probing:
        probe(pid, Path(deployment.env["MEMPROBE_DIR"]), 1)
    before = rss_kib(pid)
    opened = await hold_idle(ws_url, deployment.token, path, sockets)
    await asyncio.sleep(2)
    after = rss_kib(pid)
    if probing:
        probe(pid, Path(deployment.env["MEMPROBE_DIR"]), 2)
    await asyncio.gather(*[s.close() for s in opened + warm])
    return {"sockets": sockets, "before": before, "after": after}


def run(mode: str, sockets: int, probing: bool, env_extra: dict) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        env = dict(EXTRA, **env_extra)
        if probing:
            env.update(MEMPROBE_DIR=str(directory), PYTHONTRACEMALLOC="1")
        deployment = deploy(mode, directory, env)
        try:
            result = asyncio.run(measure(deployment, sockets))
        finally:
            deployment.stop()
        if probing:
            report_probe(directory, sockets)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--sockets", default="2000")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args()
    raise_fd_limit()
    env_extra = dict(item.split("=", 1) for item in args.env)
    for sockets in (int(n) for n in args.sockets.split(",")):
        per_socket = []
        for number in range(args.runs):
            result = run(args.mode, sockets, args.probe, env_extra)
            kib = (result["after"] - result["before"]) / sockets
            per_socket.append(kib)
            print(
                f"{args.mode} {sockets} sockets run {number + 1}: {kib:.1f} KiB per socket "
                f"(RSS {result['before']} -> {result['after']} KiB)",
                flush=True,
            )
        if len(per_socket) > 1:
            print(
                f"{args.mode} {sockets} sockets: {min(per_socket):.1f}-{max(per_socket):.1f} "
                f"KiB per socket, median {statistics.median(per_socket):.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
