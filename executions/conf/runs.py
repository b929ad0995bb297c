"""Where executions run, how runners keep and lose them, and what each process keeps."""

from collections.abc import Mapping
from typing import Any

from executions.env import boolean, integer, number, seconds, text, text_list


def runner_default(values: Mapping[str, Any]) -> str:
    """Workers with Redis, the server process without it."""
    return "celery" if values["REDIS_URL"] else "inprocess"


SETTINGS = [
    # A backend's short name or import path; executions.runners checks it.
    text(
        "EXECUTIONS_RUNNER",
        runner_default,
        "where executions run: the server process, or `manage.py worker` processes "
        "(or the import path of another `executions.runners.Runner` subclass)",
        shown="`inprocess`, or `celery` with `REDIS_URL`",
    ),
    # Runners renew their leases every EXECUTIONS_CANCEL_POLL_INTERVAL, and at least
    # three times per lease whatever the two are.
    seconds(
        "EXECUTIONS_LEASE_SECONDS",
        "30",
        "a runner that has not renewed its claim for this long is lost",
        above=0,
    ),
    seconds(
        "EXECUTIONS_REAPER_INTERVAL",
        "5",
        "seconds between each runner's checks for lost executions and dispatches",
        above=0,
    ),
    # The broker may have lost the message, e.g. when Redis restarted.
    seconds(
        "EXECUTIONS_REDISPATCH_AFTER",
        "60",
        (
            "pending executions dispatched longer ago are dispatched again (the wait doubles "
            "after each re-dispatch, to 32 times this; none while the broker's queue holds a task "
            "for each pending execution)"
        ),
        above=0,
    ),
    integer(
        "EXECUTIONS_MAX_RUNS",
        "3",
        "runs an execution may get in all, reruns after lost workers included",
        minimum=1,
    ),
    seconds(
        "EXECUTIONS_SHUTDOWN_GRACE_SECONDS",
        "20",
        "on SIGTERM, how long a worker lets its runs finish before handing them back",
        minimum=0,
    ),
    seconds(
        "EXECUTIONS_CANCEL_POLL_INTERVAL",
        "1.0",
        "seconds between a runner's checks for cancellations requested through another process",
        above=0,
    ),
    boolean(
        "EXECUTIONS_MAINTENANCE",
        True,
        "look for lost executions and dispatches in this process",
    ),
    seconds(
        "WORKERS_HEARTBEAT_SECONDS",
        "5",
        (
            "seconds between the heartbeats every server and worker writes to the database (see "
            "[Workers](#workers))"
        ),
    ),
    seconds(
        "WORKERS_TIMEOUT_SECONDS",
        "20",
        (
            "a process whose last heartbeat is older than this (by the database's clock) is gone; "
            "above `WORKERS_HEARTBEAT_SECONDS`"
        ),
    ),
    number(
        "WORKERS_RETENTION_HOURS",
        "24",
        (
            "the row of a process gone this long is deleted (its executions' runs keep its name); "
            "`0` keeps them all"
        ),
        unit="hours",
    ),
    number(
        "EXECUTIONS_RETENTION_DAYS",
        "30",
        (
            "finished executions (completed, failed, cancelled) are deleted, with their events "
            "and node rows, this many days after they finished; `0` keeps them all. Pending and "
            "running ones are never touched"
        ),
        unit="days",
        minimum=0,
    ),
    integer(
        "EXECUTIONS_RETENTION_BATCH",
        "1000",
        "rows one delete statement removes at most, each statement its own short transaction",
        minimum=1,
    ),
    seconds(
        "EXECUTIONS_RETENTION_INTERVAL",
        "3600",
        (
            "seconds between prunes by the maintenance loops, once for all processes sharing the "
            "cache (Redis); `0`: only `manage.py prune_executions` prunes"
        ),
        minimum=0,
    ),
    integer(
        "EXECUTIONS_DB_THREADS",
        "2",
        (
            "threads the engine uses for database writes (more threads wait longer for the GIL: "
            "see docs/benchmarks.md)"
        ),
        minimum=1,
    ),
    seconds(
        "DATABASE_HEALTH_CHECK_AFTER_IDLE",
        "1",
        (
            "PostgreSQL: seconds a kept connection may go unused before its next use checks it "
            "first (`SELECT 1`); a connection in use is not checked before each request, event "
            "written or socket read (one that broke fails that query and is replaced). 0: check "
            "before every request, as Django does"
        ),
        minimum=0,
    ),
    seconds(
        "PROCESS_SWITCH_INTERVAL",
        "0.0005",
        (
            "seconds a thread of a server or worker may keep Python's interpreter lock while "
            "another waits for it (Python's default is `0.005`): the event loop that sends to "
            "sockets waits at most this long behind database and engine threads"
        ),
    ),
    integer(
        "PROCESS_MALLOC_ARENAS",
        "2",
        (
            "malloc arenas the C allocator (glibc) may keep in a server or worker; `0` leaves "
            "glibc's default of eight per core, where each busy thread (socket reads, engine "
            "writes, requests) keeps an arena of its own and the memory it once held"
        ),
    ),
    boolean(
        "METRICS_ENABLED",
        True,
        (
            "Prometheus metrics at each server's `/metrics` and each worker's `--metrics-port`; "
            "off: nothing is measured, `/metrics` answers 404 (see [Metrics](#metrics))"
        ),
    ),
    text(
        "METRICS_TOKEN",
        "",
        (
            "a scrape with `Authorization: Bearer <this>` may read the metrics (16 or more "
            "printable ASCII characters)"
        ),
    ),
    text_list(
        "METRICS_ALLOWED_ADDRESSES",
        "",
        (
            "comma-separated addresses and networks (`127.0.0.1,10.0.0.0/8`) that may read the "
            "metrics without the token (a server's client address as `TRUSTED_PROXY_HOPS` settles "
            "it). With neither this nor `METRICS_TOKEN`, anyone may while `DEBUG` is on, nobody "
            "while it is off"
        ),
    ),
]
