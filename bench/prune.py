"""Retention under load: pruning a million old events while executions run and sockets watch.

    python -m bench.prune                 # one run: about 1,000,000 events to delete
    python -m bench.prune --runs 3        # three fresh runs, side by side

Each run starts a distributed deployment (one daphne server, one worker,
PostgreSQL, Redis; the maintenance loop's own pruning off), fills its fresh
database in a few statements (generate_series): old finished executions with
their events and node rows, recent finished ones, expired sessions and socket
tickets. Then live executions record log lines at a steady rate while
subscribers follow them; push latency (receive time minus the event's
``timestamp``) is measured first with no prune running, then while
``manage.py prune_executions`` runs (in a process of its own, timing each of
its statements and transactions). Afterwards it checks that every live
execution kept every event and node row, that every subscriber saw every
event, and that exactly the old executions are gone.
"""

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import websockets

from bench import processes
from bench.measure import Api, collector_paused, stamp_seconds, summary_ms


@dataclass(frozen=True)
class Load:
    old_executions: int = 10_000
    events_per_execution: int = 100
    recent_executions: int = 100
    expired_sessions: int = 1_000
    expired_tickets: int = 1_000
    live_executions: int = 10
    subscribers_per_execution: int = 2
    events_per_second: float = 10.0  # per live execution
    baseline_seconds: float = 20.0
    warmup_seconds: float = 3.0


def build_old_data(database_url: str, load: Load, workflow_id: str, owner_id: int) -> float:
    """Fill the database with what a prune deletes (and what it keeps); seconds it took."""
    started = time.monotonic()
    finished = {"old": "now() - interval '60 days'", "recent": "now() - interval '1 day'"}
    with psycopg.connect(database_url, autocommit=True) as db:
        for label, count in (("old", load.old_executions), ("recent", load.recent_executions)):
            db.execute(
                f"""
                INSERT INTO executions_execution (
                    id, workflow_id, owner_id, status, progress, message, input_data, result,
                    error, execution_time, created_at, started_at, finished_at, last_seq,
                    last_event_at, claimed_by, runs, definition, log_lines, log_bytes, log_cut,
                    redispatches)
                SELECT gen_random_uuid(), %(workflow)s, %(owner)s, 'completed', 100,
                    'Completed in 1.00 s', '{{}}', '{{"emit": {{"ticks": 99}}}}', NULL, 1.0,
                    {finished[label]} - interval '1 second',
                    {finished[label]} - interval '1 second',
                    {finished[label]}, %(events)s, {finished[label]}, '', 1,
                    '{{"nodes": []}}', 0, 0, false, 0
                FROM generate_series(1, %(count)s)
                """,
                {
                    "workflow": workflow_id,
                    "owner": owner_id,
                    "events": load.events_per_execution,
                    "count": count,
                },
            )
        db.execute(
            """
            INSERT INTO executions_executionevent (execution_id, seq, type, data, created_at)
            SELECT x.id, s, CASE WHEN s = %(events)s THEN 'status' ELSE 'log' END,
                jsonb_build_object('node_id', 'emit', 'level', 'info', 'message', 'tick ' || s),
                x.finished_at
            FROM executions_execution x CROSS JOIN generate_series(1, %(events)s) s
            WHERE x.status = 'completed'
            """,
            {"events": load.events_per_execution},
        )
        db.execute(
            """
            INSERT INTO executions_noderun (execution_id, node_id, node_type, position, status,
                attempts, max_attempts, started_at, finished_at, duration, output, error)
            SELECT id, 'emit', 'bench_emit', 0, 'completed', 1, 1, started_at, finished_at, 1.0,
                '{"ticks": 99}', NULL
            FROM executions_execution WHERE status = 'completed'
            """
        )
        db.execute(
            """
            INSERT INTO django_session (session_key, session_data, expire_date)
            SELECT md5(random()::text || g), 'e30:expired', now() - interval '1 day'
            FROM generate_series(1, %s) g
            """,
            [load.expired_sessions],
        )
        db.execute(
            """
            INSERT INTO realtime_socketticket (key_hash, user_id, created_at, expires_at)
            SELECT encode(sha256(random()::text::bytea || g::text::bytea), 'hex'), %s,
                now() - interval '1 hour', now() - interval '59 minutes'
            FROM generate_series(1, %s) g
            """,
            [owner_id, load.expired_tickets],
        )
        db.execute("VACUUM ANALYZE")
        # Write the new pages out now, not during the measurements.
        db.execute("CHECKPOINT")
    return time.monotonic() - started


@dataclass
class Followed:
    seqs: list[int]
    stamps: list[tuple[float, float]]  # (recorded, received) of each live event
    last_status: str = ""


async def follow(ws_url: str, token: str, execution_id: str, ready: asyncio.Event) -> Followed:
    """Every message of one execution's stream from seq 1, to its end."""
    seen = Followed([], [])
    async with websockets.connect(
        f"{ws_url}/api/v1/ws/executions/{execution_id}?last_seq=0",
        additional_headers={"Authorization": f"Bearer {token}"},
        max_queue=None,
        ping_interval=None,
    ) as socket:
        ready.set()
        async for frame in socket:
            received = time.time()
            message = json.loads(frame)
            if "seq" not in message:
                continue
            seen.seqs.append(message["seq"])
            seen.stamps.append((stamp_seconds(message["timestamp"]), received))
            if message.get("type", "status") == "status":
                seen.last_status = message["status"]
    return seen


async def prune_child(env: dict) -> asyncio.subprocess.Process:
    """A process that will run ``manage.py prune_executions``, set up and waiting for a line
    on its standard input: its start-up is not measured as the prune."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.prune", "--child",
        cwd=processes.ROOT, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    ready = await child.stdout.readline()
    if ready.strip() != b"ready":
        raise RuntimeError(f"the prune did not start: {(await child.stderr.read()).decode()}")
    return child


async def prune_now(child: asyncio.subprocess.Process) -> dict:
    """Start the waiting prune; its counts and times once it is done."""
    out, err = await child.communicate(b"go\n")
    if child.returncode:
        raise RuntimeError(f"the prune failed: {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


def child_main() -> None:
    """Run the command with timers on the connection; print its output and the times."""
    import io

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    connection.ensure_connection()
    print("ready", flush=True)
    sys.stdin.readline()
    timer = TransactionTimer(connection)
    output = io.StringIO()
    started = time.time()
    with connection.execute_wrapper(timer):
        call_command("prune_executions", stdout=output)
    print(
        json.dumps(
            {
                "output": output.getvalue().strip(),
                "started": started,
                "ended": time.time(),
                "seconds": time.time() - started,
                "statements": timer.statements,
                "longest_statement_ms": timer.longest_statement * 1000,
                "longest_transaction_ms": timer.longest_transaction * 1000,
                "slowest": timer.slowest,
            }
        )
    )


class TransactionTimer:
    """Times every statement, and every transaction from its first statement to its commit."""

    def __init__(self, connection):
        self.connection = connection
        self.statements = 0
        self.longest_statement = 0.0
        self.longest_transaction = 0.0
        self.opened: float | None = None
        self.slowest: list[tuple[float, str]] = []
        commit = connection.commit

        def timed_commit():
            commit()
            if self.opened is not None:
                self.longest_transaction = max(
                    self.longest_transaction, time.perf_counter() - self.opened
                )
                self.opened = None

        connection.commit = timed_commit

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        if self.connection.in_atomic_block and self.opened is None:
            self.opened = started
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - started
            self.statements += 1
            self.longest_statement = max(self.longest_statement, took)
            self.slowest = sorted([*self.slowest, (took, sql[:160])], reverse=True)[:5]
            if not self.connection.in_atomic_block:
                # Autocommit: the statement was a transaction of its own.
                self.longest_transaction = max(self.longest_transaction, took)


def live_intact(database_url: str, ids: list[str]) -> list[str]:
    """Problems with the live executions' rows: each keeps seq 1..last_seq and its node."""
    with psycopg.connect(database_url) as db:
        rows = db.execute(
            """
            SELECT x.id::text, x.last_seq, count(e.id), coalesce(max(e.seq), 0),
                (SELECT count(*) FROM executions_noderun n WHERE n.execution_id = x.id)
            FROM executions_execution x LEFT JOIN executions_executionevent e
                ON e.execution_id = x.id
            WHERE x.id = ANY(%s::uuid[]) GROUP BY x.id
            """,
            [ids],
        ).fetchall()
    problems = [f"{len(ids) - len(rows)} live executions missing"] if len(rows) < len(ids) else []
    for execution_id, last_seq, count, highest, nodes in rows:
        if not (last_seq == count == highest) or nodes != 1:
            problems.append(f"{execution_id}: last_seq {last_seq}, {count} events, {nodes} nodes")
    return problems


def left_over(database_url: str, load: Load) -> list[str]:
    """Problems with what the prune was to delete or keep."""
    with psycopg.connect(database_url) as db:
        old, recent, recent_events, workflows = db.execute(
            """
            SELECT
                (SELECT count(*) FROM executions_execution
                 WHERE finished_at < now() - interval '30 days'),
                (SELECT count(*) FROM executions_execution
                 WHERE finished_at < now() - interval '12 hours'),
                (SELECT count(*) FROM executions_executionevent e JOIN executions_execution x
                 ON x.id = e.execution_id WHERE x.finished_at < now() - interval '12 hours'),
                (SELECT count(*) FROM executions_workflow)
            """
        ).fetchone()
    problems = []
    if old:
        problems.append(f"{old} old executions left")
    if recent != load.recent_executions or recent_events != recent * load.events_per_execution:
        problems.append(f"recent executions: {recent}, with {recent_events} events")
    if not workflows:
        problems.append("the workflow was deleted")
    return problems


async def one_run(directory: Path, load: Load) -> dict:
    deployment = processes.distributed(
        directory,
        servers=1,
        workers=1,
        EXTRA_INSTALLED_APPS="bench.emitter",
        EXECUTIONS_RETENTION_INTERVAL="0",
        REALTIME_MAX_SOCKETS_PER_USER="100000",
        API_EXECUTION_CREATE_RATE="",
    )
    try:
        return await measure(deployment, load)
    finally:
        deployment.stop()


async def measure(deployment, load: Load) -> dict:
    server = deployment.servers[0]
    api = Api(server.url, deployment.token)
    database_url = deployment.env["DATABASE_URL"]
    workflow = api.request(
        "POST",
        "/api/v1/workflows",
        {
            "name": "retention",
            "definition": {
                "nodes": [
                    {
                        "id": "emit",
                        "type": "bench_emit",
                        "params": {"count": 1_000_000, "interval": 1 / load.events_per_second},
                    }
                ],
                "edges": [],
            },
        },
    )
    build_seconds = build_old_data(database_url, load, workflow["id"], owner_id(database_url))
    ids, _ = await api.create_executions(workflow["id"], load.live_executions)
    await api.wait_started(ids)
    ready = [asyncio.Event() for _ in range(len(ids) * load.subscribers_per_execution)]
    followers = [
        asyncio.create_task(follow(server.ws_url, deployment.token, execution_id, event))
        for (execution_id, event) in zip(
            [i for i in ids for _ in range(load.subscribers_per_execution)], ready, strict=True
        )
    ]
    with collector_paused():
        await asyncio.gather(*[event.wait() for event in ready])
        child = await prune_child(deployment.env)
        baseline_from = time.time() + load.warmup_seconds
        await asyncio.sleep(load.warmup_seconds + load.baseline_seconds)
        prune = await prune_now(child)
        prune_from, prune_until = prune["started"], prune["ended"]
        await asyncio.sleep(load.baseline_seconds)
        after_until = time.time()
        for execution_id in ids:
            api.request("POST", f"/api/v1/executions/{execution_id}/cancel")
        streams = await asyncio.gather(*followers)
    stamps = [stamp for stream in streams for stamp in stream.stamps]

    def window(*spans: tuple[float, float]) -> list[float]:
        return [
            received - recorded
            for recorded, received in stamps
            if any(start <= recorded < end for start, end in spans)
        ]

    # Pruning off: the same time before and after it, so that other load on
    # the machine weighs on both sides alike; after it also shows its
    # aftermath (autovacuum of the deleted rows).
    phases = {
        "before": window((baseline_from, prune_from)),
        "during": window((prune_from, prune_until)),
        "after": window((prune_until, after_until)),
    }

    problems = live_intact(database_url, ids) + left_over(database_url, load)
    with psycopg.connect(database_url) as db:
        vacuumed = db.execute(
            "SELECT extract(epoch FROM last_autovacuum) FROM pg_stat_user_tables "
            "WHERE relname = 'executions_executionevent'"
        ).fetchone()[0]
    heads = {i: h for i, h in zip(ids, event_heads(database_url, ids), strict=True)}
    for index, stream in enumerate(streams):
        head = heads[ids[index // load.subscribers_per_execution]]
        if sorted(set(stream.seqs)) != list(range(1, head + 1)) or len(stream.seqs) != head:
            problems.append(f"subscriber {index} saw {len(stream.seqs)} of {head} events")
        if stream.last_status != "cancelled":
            problems.append(f"subscriber {index} ended at {stream.last_status!r}")
    return {
        "build_seconds": build_seconds,
        **{phase: summary_ms(values) | {"n": len(values)} for phase, values in phases.items()},
        "prune": prune,
        # When autovacuum last cleaned the events table, in seconds after the prune ended.
        "autovacuum_after": None if vacuumed is None else float(vacuumed) - prune_until,
        "problems": problems,
    }


def owner_id(database_url: str) -> int:
    with psycopg.connect(database_url) as db:
        return db.execute("SELECT id FROM auth_user WHERE username = 'demo'").fetchone()[0]


def event_heads(database_url: str, ids: list[str]) -> list[int]:
    with psycopg.connect(database_url) as db:
        rows = dict(
            db.execute(
                "SELECT id::text, last_seq FROM executions_execution WHERE id = ANY(%s::uuid[])",
                [ids],
            ).fetchall()
        )
    return [rows[i] for i in ids]


def vacuumed(result: dict) -> str:
    seconds = result["autovacuum_after"]
    return "not yet" if seconds is None else f"{seconds:+.0f}"


def render(results: list[dict], load: Load) -> str:
    lines = [
        f"{load.live_executions} live executions x {load.events_per_second:g} events/s, "
        f"{load.subscribers_per_execution} subscribers each; "
        f"{load.old_executions:,} old executions x {load.events_per_execution} events to prune",
        "",
        "| run | push p50 before / during / after (ms) | p99 | max | events measured "
        "| prune (s) | longest transaction (ms) | longest statement (ms) | statements "
        "| data setup (s) | events autovacuumed (s after the prune) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, r in enumerate(results, 1):
        prune = r["prune"]

        def three(key: str, r=r) -> str:
            return " / ".join(f"{r[phase][key]:.1f}" for phase in ("before", "during", "after"))

        measured = " / ".join(str(r[phase]["n"]) for phase in ("before", "during", "after"))
        lines.append(
            f"| {n} | {three('p50')} | {three('p99')} | {three('max')} | {measured} | "
            f"{prune['seconds']:.1f} | {prune['longest_transaction_ms']:.0f} | "
            f"{prune['longest_statement_ms']:.0f} | {prune['statements']:,} | "
            f"{r['build_seconds']:.0f} | {vacuumed(r)} |"
        )
    lines.append("")
    lines += [f"run {n}: {r['prune']['output']}" for n, r in enumerate(results, 1)]
    return "\n".join(lines)


def main() -> int:
    if "--child" in sys.argv:
        child_main()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--old-executions", type=int, default=Load.old_executions)
    parser.add_argument("--events-per-execution", type=int, default=Load.events_per_execution)
    args = parser.parse_args()
    load = Load(old_executions=args.old_executions, events_per_execution=args.events_per_execution)
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as directory:
            results.append(asyncio.run(one_run(Path(directory), load)))
    print(render(results, load))
    problems = [f"run {n}: {p}" for n, r in enumerate(results, 1) for p in r["problems"]]
    for problem in problems:
        print("PROBLEM:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
