"""What a runner measures: its runs, their claims, and the events they record.

A runner is a worker process, or the server in the embedded mode. Every
measure is a counter's or histogram's step in memory; none reads the database.
"""

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from executions.metrics.registry import OTHER, Labelled, bounded, switch
from executions.models import EventType
from executions.states import TERMINAL_STATUSES

# Where a run's write to the event log started: a node's log line or chunk
# (``RECORD``), or a change of state (``STATE``).
RECORD, STATE = "record", "state"

EXECUTIONS_RUNNING = Gauge(
    "workflows_executions_running", "Executions this process is running now."
)
EXECUTIONS_CLAIMED = Counter(
    "workflows_executions_claimed",
    "Executions this process claimed to run: first runs and reruns.",
)
EXECUTIONS_FINISHED = Counter(
    "workflows_executions_finished",
    "Executions this process ended (its runs, and lost runs it found), by final status.",
    ["status"],
)
LEASE_RENEWALS = Counter(
    "workflows_lease_renewals",
    "Claims this process's runs renewed, one per run per renewal.",
)
LEASE_EXPIRIES = Counter(
    "workflows_lease_expiries",
    "Runs whose runner stopped renewing its claim, found and ended or requeued here.",
)
CLAIMS_LOST = Counter(
    "workflows_claims_lost",
    "Runs of this process that found their claim expired and taken over: they stopped.",
)
RERUNS = Counter(
    "workflows_execution_reruns",
    "Executions queued to run again from the start after their runner was lost.",
)
EVENTS_RECORDED = Counter(
    "workflows_events_recorded",
    "Events this process stored in the event log, by type.",
    ["type"],
)
EVENT_COMMIT = Histogram(
    "workflows_event_commit_seconds",
    "From a run's write (record: a node's log line or chunk; state: a change of "
    "state) to the commit of its event.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECORD_BATCH = Histogram(
    "workflows_record_batch_size",
    "Log lines and chunks written in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)

FINAL_STATUSES = frozenset(str(status) for status in TERMINAL_STATUSES)
EVENT_TYPES = frozenset(EventType.values)
_finished = Labelled(EXECUTIONS_FINISHED)
_recorded = Labelled(EVENTS_RECORDED)
_committed = Labelled(EVENT_COMMIT)


def start_at_zero() -> None:
    """Make the series of every fixed label set now: one that first appears at its
    first step would have that step missed by ``rate()`` and ``increase()``."""
    for status in FINAL_STATUSES:
        _finished(status)
    for event_type in EVENT_TYPES:
        _recorded(event_type)
    for kind in (RECORD, STATE):
        _committed(kind)


start_at_zero()


def runs_counted_by(count: Callable[[], int]) -> None:
    """Read the running executions from ``count`` at each scrape (the runner's own count)."""
    EXECUTIONS_RUNNING.set_function(count)


def execution_claimed() -> None:
    if switch.on:
        EXECUTIONS_CLAIMED.inc()


def execution_finished(status: str) -> None:
    if switch.on:
        _finished(bounded(status, FINAL_STATUSES)).inc()


def leases_renewed(count: int) -> None:
    if switch.on:
        LEASE_RENEWALS.inc(count)


def claim_lost() -> None:
    if switch.on:
        CLAIMS_LOST.inc()


def lease_expired(status: str) -> None:
    """A lost run was handled: ended with ``status``, or pending again (a rerun)."""
    if not switch.on:
        return
    LEASE_EXPIRIES.inc()
    final = bounded(status, FINAL_STATUSES)
    if final == OTHER:
        RERUNS.inc()
    else:
        _finished(final).inc()


def event_recorded(event_type: str) -> None:
    if switch.on:
        child = _recorded.children.get((event_type,))
        (child or _recorded.among(EVENT_TYPES, event_type)).inc()


def event_committed(kind: str, seconds: float) -> None:
    """A write of ``kind`` (``RECORD``, ``STATE``) committed ``seconds`` after it was made."""
    if switch.on:
        _committed.children[(kind,)].observe(seconds)


def record_batch_written(size: int) -> None:
    if switch.on:
        RECORD_BATCH.observe(size)
