"""Reads shared by the REST API, the WebSocket consumer and the admin."""

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connections, router
from django.db.models import BooleanField, Case, Count, F, Min, QuerySet, Value, When, Window
from django.db.models.functions import Now, RowNumber

from executions.clock import database_now
from executions.models import (
    EventType,
    Execution,
    ExecutionEvent,
    ExecutionRun,
    ExecutionStatus,
    Worker,
    Workflow,
)
from executions.states import TERMINAL_STATUSES


def workflows_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Workflow]:
    """Workflows the user owns; staff see all, anonymous users none."""
    workflows = Workflow.objects.all()
    if not user.is_authenticated:
        return workflows.none()
    return workflows if user.is_staff else workflows.filter(owner=user)


def executions_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Execution]:
    """Executions the user owns; staff see all, anonymous users none."""
    executions = Execution.objects.all()
    if not user.is_authenticated:
        return executions.none()
    return executions if user.is_staff else executions.filter(owner=user)


def execution_visible_to(user: AbstractBaseUser, execution_id: Any) -> Execution | None:
    """The execution if ``user`` may see it, as a socket subscribing to it reads it:
    its state, without the definition and input, which a snapshot does not show
    (left deferred: reading them is a query of its own).

    Every socket handshake makes this read, so its SQL is compiled once per
    database and kind of user (``visible_execution_sql``): Django compiling the
    query each time took three times as long as running it, and a third of a
    server's interpreter time while thousands of sockets connect.
    """
    if not user.is_authenticated:
        return None
    alias = router.db_for_read(Execution)
    sql = visible_execution_sql(alias, staff=user.is_staff)
    params = visible_execution_params(alias, execution_id, None if user.is_staff else user.pk)
    return next(iter(Execution.objects.using(alias).raw(sql, params)), None)


OWNER = Execution._meta.get_field("owner")
# Placeholders the compiled query is checked against.
_SOME_ID, _SOME_OWNER = uuid.UUID(int=1), 1


def visible_execution_params(alias: str, execution_id: Any, owner_id: Any | None) -> list:
    """The parameters of ``visible_execution_sql`` as the database takes them: the
    execution's id, then the owner's unless ``owner_id`` is None (staff)."""
    connection = connections[alias]
    params = [Execution._meta.pk.get_db_prep_value(execution_id, connection)]
    if owner_id is not None:
        params.append(OWNER.get_db_prep_value(owner_id, connection))
    return params


@functools.cache
def visible_execution_sql(alias: str, *, staff: bool) -> str:
    """``execution_visible_to``'s SQL for one database, compiled by the ORM from
    placeholder values and checked to take ``visible_execution_params``."""
    executions = Execution.objects.using(alias).filter(id=_SOME_ID)
    if not staff:
        executions = executions.filter(owner_id=_SOME_OWNER)
    executions = executions.order_by().defer("definition", "input_data")[:1]
    sql, params = executions.query.sql_with_params()
    expected = visible_execution_params(alias, _SOME_ID, None if staff else _SOME_OWNER)
    if list(params) != expected:
        raise RuntimeError(f"execution_visible_to's query took {params!r}, not {expected!r}")
    return sql


def events_after(
    execution_id: Any, seq: int, *, upto: int | None = None, limit: int | None = None
) -> list[ExecutionEvent]:
    """The stored events with ``seq > seq`` (and ``<= upto``), oldest first."""
    events = ExecutionEvent.objects.filter(execution_id=execution_id, seq__gt=seq)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    events = events.order_by("seq")
    return list(events if limit is None else events[:limit])


@dataclass
class NodeStreamsRead:
    """What one node's current attempt streamed: each stream's text (or list of
    JSON pieces) by name, and whether the execution's stream limit cut them."""

    streams: dict = field(default_factory=dict)
    truncated: bool = False


def node_streams(execution_id: Any, attempts: dict[str, int]) -> dict[str, NodeStreamsRead]:
    """The streams of each node's attempt ``attempts[node_id]``, from its ``chunk``
    events, by node id."""
    found: dict[str, NodeStreamsRead] = {}
    chunks = ExecutionEvent.objects.filter(execution_id=execution_id, type=EventType.CHUNK)
    for (data,) in chunks.order_by("seq").values_list("data"):
        if attempts.get(data["node_id"]) != data["attempt"]:
            continue  # an earlier attempt's
        read = found.setdefault(data["node_id"], NodeStreamsRead())
        piece = data["data"]
        read.streams[data["stream"]] = read.streams.get(data["stream"], piece[:0]) + piece
        read.truncated = read.truncated or bool(data.get("stream_truncated"))
    return found


def execution_heads(execution_ids: Iterable[Any]) -> dict[Any, int]:
    """The newest event ``seq`` of each execution, in one query."""
    return dict(Execution.objects.filter(id__in=list(execution_ids)).values_list("id", "last_seq"))


def executions_cancel_requested(*, execution_ids: list) -> list:
    """Which of these executions someone asked to cancel."""
    return list(
        Execution.objects.filter(
            id__in=execution_ids, cancel_requested_at__isnull=False
        ).values_list("id", flat=True)
    )


def executions_with_expired_lease() -> list[tuple[Any, str]]:
    """``(id, claimed_by)`` of running executions whose runner stopped renewing its
    claim, by the database's clock (the one leases are written with)."""
    expired = Execution.objects.filter(status=ExecutionStatus.RUNNING, lease_expires_at__lt=Now())
    return list(expired.values_list("id", "claimed_by")[:500])


# Process rows the workers view lists at most: every live one, then the gone
# ones most recently seen.
WORKERS_SHOWN = 200
# Running executions it lists per process; their count is always whole.
EXECUTIONS_SHOWN_PER_WORKER = 20


class LeaseHealth(StrEnum):
    """How a process keeps up the leases of the executions it runs."""

    OK = "ok"
    """Every lease was renewed within the last third of ``EXECUTIONS_LEASE_SECONDS``
    (runners renew about every second, at least three times per lease)."""
    LATE = "late"
    """A lease is overdue for renewal: the process, or its database, is falling behind."""
    EXPIRED = "expired"
    """A lease ran out: maintenance will take the execution from it."""


@dataclass
class RunningExecution:
    """One execution a process runs, as the workers view lists it."""

    id: Any
    workflow_id: Any
    workflow_name: str
    started_at: datetime | None
    lease_expires_at: datetime | None


@dataclass
class WorkerRead:
    """A process with what the database says it runs, as of the database's ``now``."""

    worker: Worker
    alive: bool
    seen_ago: float
    claimed: int = 0
    executions: list[RunningExecution] = field(default_factory=list)
    # Seconds since the least recently renewed of its leases was renewed.
    stalest_renewal: float | None = None
    lease_health: LeaseHealth | None = None


def workers_with_liveness(now: datetime) -> QuerySet[Worker]:
    """Every process row, with ``alive``: heard of within ``WORKERS_TIMEOUT_SECONDS``
    of ``now`` (the database's time) and not stopped."""
    cutoff = now - timedelta(seconds=settings.WORKERS_TIMEOUT_SECONDS)
    return Worker.objects.annotate(
        alive=Case(
            When(stopped_at__isnull=True, last_seen_at__gte=cutoff, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
    )


def workers_overview() -> list[WorkerRead]:
    """The processes, live ones first, each with the executions claimed in its name
    and the health of their leases (four queries, whatever their number)."""
    now = database_now()
    rows = list(workers_with_liveness(now).order_by("-last_seen_at")[:WORKERS_SHOWN])
    reads = [
        WorkerRead(worker=row, alive=row.alive, seen_ago=max(0.0, _seconds(now - row.last_seen_at)))
        for row in rows
    ]
    # A name may come back (a pid used again): its claims are its newest row's.
    by_name = {read.worker.name: read for read in sorted(reads, key=_started)}
    _claims_attach(by_name, now)
    reads.sort(key=lambda read: (not read.alive, read.worker.kind, read.worker.name))
    return reads


def _claims_attach(by_name: dict[str, WorkerRead], now: datetime) -> None:
    running = Execution.objects.filter(status=ExecutionStatus.RUNNING, claimed_by__in=by_name)
    claims = (
        running.order_by().values_list("claimed_by").annotate(Count("id"), Min("lease_expires_at"))
    )
    lease = settings.EXECUTIONS_LEASE_SECONDS
    for name, count, earliest in claims:
        read = by_name[name]
        read.claimed = count
        if earliest is not None:
            read.stalest_renewal = max(0.0, lease - _seconds(earliest - now))
            read.lease_health = _lease_health(read.stalest_renewal, lease)
    ranked = running.annotate(
        rank=Window(RowNumber(), partition_by=[F("claimed_by")], order_by=F("started_at").asc())
    ).filter(rank__lte=EXECUTIONS_SHOWN_PER_WORKER)
    shown = ranked.order_by("claimed_by", "started_at").values_list(
        "claimed_by", "id", "workflow_id", "workflow__name", "started_at", "lease_expires_at"
    )
    for name, *execution in shown:
        by_name[name].executions.append(RunningExecution(*execution))


def _lease_health(stalest_renewal: float, lease: float) -> LeaseHealth:
    if stalest_renewal >= lease:
        return LeaseHealth.EXPIRED
    return LeaseHealth.LATE if stalest_renewal > lease / 3 else LeaseHealth.OK


def _started(read: WorkerRead) -> datetime:
    return read.worker.started_at


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


@dataclass
class RunRead:
    """One run of an execution: the process that ran it, from when to when, how it ended."""

    number: int
    worker_name: str
    worker_id: Any
    worker_alive: bool
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    reason: str


def execution_runs(execution: Execution) -> list[RunRead]:
    """Its runs, first first, in one query, each ended as ``run_end`` says."""
    rows = execution.run_rows.select_related("worker").annotate(db_now=Now()).order_by("number")
    timeout = timedelta(seconds=settings.WORKERS_TIMEOUT_SECONDS)
    runs = []
    for row in rows:
        worker = row.worker
        seen = worker is not None and worker.last_seen_at >= row.db_now - timeout
        ended_at, outcome = run_end(row, execution)
        runs.append(
            RunRead(
                number=row.number,
                worker_name=row.worker_name,
                worker_id=None if worker is None else worker.id,
                worker_alive=seen and worker.stopped_at is None,
                started_at=row.started_at,
                ended_at=ended_at,
                outcome=outcome,
                reason=row.reason,
            )
        )
    return runs


def run_end(run: ExecutionRun, execution: Execution) -> tuple[datetime | None, str | None]:
    """When and how a run ended, ``(None, None)`` while it runs: as recorded for a run
    that sent the execution back to run again; the last run of an execution that
    ended, with the execution (its ``finished_at`` and ``status``)."""
    if run.ended_at is not None:
        return run.ended_at, run.outcome or None
    if run.number == execution.runs and execution.status in TERMINAL_STATUSES:
        return execution.finished_at, execution.status
    return None, None


def executions_count_by_status() -> dict[str, int]:
    """How many executions there are in each status, every status named."""
    counts = dict.fromkeys(ExecutionStatus.values, 0)
    counts.update(Execution.objects.order_by().values_list("status").annotate(Count("id")))
    return counts


def execution_oldest_pending() -> tuple[Execution, float] | None:
    """The pending execution created first, with its workflow, and its age in
    seconds by the database's clock; ``None`` when none is pending."""
    pending = Execution.objects.filter(status=ExecutionStatus.PENDING).select_related("workflow")
    oldest = pending.only("id", "created_at", "workflow__name").annotate(db_now=Now())
    execution = oldest.order_by("created_at", "id").first()
    if execution is None:
        return None
    return execution, max(0.0, _seconds(execution.db_now - execution.created_at))
