"""What every write shares: the locked execution row, its checks, and the
appending of its events with the next ``seq`` values."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Now

from executions import metrics
from executions.clock import LOCKED_NOW, database_time, locked_now, locked_now_mark
from executions.exceptions import ClaimLost, InvalidTransition
from executions.models import EventType, Execution, ExecutionEvent, NodeRun, NodeStatus
from executions.signals import event_recorded
from executions.states import NODE_FINISHED_STATUSES, TERMINAL_STATUSES, can_transition
from executions.wire import log_data, node_data, status_data

UNSET: Any = object()
# The writes a change collects instead of making (``deferred_writes``), or None.
_deferred: ContextVar[list | None] = ContextVar("deferred_writes", default=None)
# The column's length: a longer status message is cut to fit it ("…" included).
MESSAGE_MAX_LENGTH = Execution._meta.get_field("message").max_length


def stop_nodes(
    execution: Execution, *, skip_pending: bool, runs: list[NodeRun] | None = None
) -> None:
    """Cancel the nodes running (or waiting to retry); skip the pending ones if asked.

    ``runs``: the execution's nodes in order, when the caller has read them already.
    """
    for run in execution.nodes.order_by("position") if runs is None else runs:
        if run.status == NodeStatus.PENDING and skip_pending:
            node_event_append(execution, run, NodeStatus.SKIPPED)
        elif run.status == NodeStatus.RUNNING or (
            run.status == NodeStatus.FAILED and run.attempts < run.max_attempts
        ):
            node_event_append(execution, run, NodeStatus.CANCELLED)


def check_claim(execution: Execution, claim_token: Any) -> None:
    if claim_token is not None and execution.claim_token != claim_token:
        raise ClaimLost(f"Execution {execution.id} is no longer claimed by this runner; it stops.")


def with_database_time(executions: QuerySet) -> QuerySet:
    """``executions`` for a write: read with the database's time (``locked_now``),
    without their definition copy (no write needs it, and a deferred field is
    left out of the row's every later save())."""
    return executions.defer("definition").annotate(**{LOCKED_NOW: Now()})


def locked(execution_id: Any, claim_token: Any = None) -> Execution:
    """The locked execution, ended or not (and still this runner's, when
    ``claim_token`` is given), read with the database's time (``locked_now``)."""
    execution = locked_now_mark(
        with_database_time(Execution.objects.select_for_update()).get(id=execution_id)
    )
    check_claim(execution, claim_token)
    return execution


def locked_open(execution_id: Any, claim_token: Any = None) -> Execution:
    """The locked execution, which must not have ended (and must still be this
    runner's, when ``claim_token`` is given)."""
    execution = locked(execution_id, claim_token)
    if execution.status in TERMINAL_STATUSES:
        raise InvalidTransition(
            f"Execution {execution.id} has ended ({execution.status}); nothing more is recorded."
        )
    return execution


def locked_with_workflow(execution_id: Any) -> Execution:
    """The locked execution (its row only) with its workflow, ended or not, read
    with the database's time (``locked_now``)."""
    return locked_now_mark(
        Execution.objects.select_for_update(of=("self",))
        .select_related("workflow")
        .annotate(**{LOCKED_NOW: Now()})
        .get(id=execution_id)
    )


def change_status(execution: Execution, *, status: str, **changes: Any) -> Execution:
    """Apply a locked execution's change and append its ``status`` event."""
    if not can_transition(execution.status, status):
        raise InvalidTransition(
            f"Execution {execution.id} cannot go from {execution.status} to {status}."
        )
    execution.status = status
    for name, value in changes.items():
        setattr(execution, name, value)
    if len(execution.message) > MESSAGE_MAX_LENGTH:
        execution.message = execution.message[: MESSAGE_MAX_LENGTH - 1] + "…"
    event_append(execution, EventType.STATUS, status_data(execution))
    _save(execution)
    return execution


def node_event_append(
    execution: Execution,
    run: NodeRun,
    status: str,
    *,
    attempt: int | None = None,
    output: Any = UNSET,
    error: str | None = None,
) -> None:
    now = locked_now(execution)
    if status == NodeStatus.RUNNING:
        run.attempts = attempt or run.attempts + 1
        run.started_at, run.finished_at, run.duration, run.error = now, None, None, None
    elif status in NODE_FINISHED_STATUSES and run.status == NodeStatus.RUNNING:
        run.finished_at = now
        run.duration = max(0.0, (now - run.started_at).total_seconds())
    if status == NodeStatus.COMPLETED:
        run.output = None if output is UNSET else output
    if status == NodeStatus.FAILED:
        run.error = stored_error(error)
    run.status = status
    _save(run)
    event_append(execution, EventType.NODE, node_data(run, finished_now=run.finished_at == now))


@checks.register
def check_text_limits(**kwargs) -> list[checks.Error]:
    """Limits that would cut every text to nothing."""
    return [
        checks.Error(
            f"{name} is {getattr(settings, name)!r}; it must be at least 1 (characters).",
            id="executions.E102",
        )
        for name in ("EXECUTIONS_EVENT_TEXT_LIMIT", "EXECUTIONS_MAX_ERROR_CHARS")
        if not getattr(settings, name) >= 1
    ]


def text_cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters ending in "…" when longer."""
    return text if len(text) <= limit else text[:limit] + "…"


def stored_error(error: str | None) -> str | None:
    """A node's or an execution's error as stored: at most ``EXECUTIONS_MAX_ERROR_CHARS``."""
    return None if error is None else text_cut(error, settings.EXECUTIONS_MAX_ERROR_CHARS)


def log_append(execution: Execution, node_id: str | None, level: str, message: str) -> None:
    """Append an engine line that goes with a change of state; never dropped by the
    log's limits (its message is cut as any line's)."""
    event_append(execution, EventType.LOG, log_data(node_id, level, message))


def log_size(message: str) -> int:
    """What a line's message counts against ``EXECUTIONS_MAX_LOG_BYTES``."""
    return len(message.encode())


def log_cut_data(*, over_lines: bool) -> dict:
    """The one warning that ends a log cut at its limit."""
    if over_lines:
        limit = f"{settings.EXECUTIONS_MAX_LOG_LINES} lines (EXECUTIONS_MAX_LOG_LINES)"
    else:
        limit = f"{settings.EXECUTIONS_MAX_LOG_BYTES} bytes of messages (EXECUTIONS_MAX_LOG_BYTES)"
    return log_data(
        None,
        "warning",
        f"The log was cut at {limit}: later lines are not recorded. Log less, or raise the limit.",
    )


def log_line_admit(execution: Execution, data: dict) -> dict | None:
    """Count a line against the locked execution's log limits; return what to
    append for it (the line, or the warning that cuts the log), or ``None``
    once the log is cut. ``log_statement`` does the same in SQL."""
    if execution.log_cut:
        return None
    size = log_size(data["message"])
    over_lines = execution.log_lines >= settings.EXECUTIONS_MAX_LOG_LINES
    over_bytes = execution.log_bytes + size > settings.EXECUTIONS_MAX_LOG_BYTES
    execution.log_lines += 1
    execution.log_bytes += size
    if over_lines or over_bytes:
        execution.log_cut = True
        return log_cut_data(over_lines=over_lines)
    return data


def event_append(execution: Execution, event_type: str, data: dict) -> ExecutionEvent:
    """Append the next event; the caller holds the row lock and saves the execution.

    Events are dated by the database's clock as they are appended, and never
    before the one they follow (the locked read's time may precede a write
    that held the lock).
    """
    now = database_time(execution)
    if execution.last_event_at is not None:
        now = max(now, execution.last_event_at)
    execution.last_seq += 1
    execution.last_event_at = now
    event = ExecutionEvent(
        execution=execution, seq=execution.last_seq, type=event_type, data=data, created_at=now
    )
    if _deferred.get() is None:
        event.save(force_insert=True)
        event_stored(event)
    else:
        _save(event)
    return event


class Writes(list):
    """The rows a change collects, in order, each once."""

    def __init__(self):
        super().__init__()
        self.seen: set[int] = set()

    def add(self, row) -> None:
        if id(row) not in self.seen:
            self.seen.add(id(row))
            self.append(row)


@contextmanager
def deferred_writes() -> Iterator[list]:
    """Collect the rows a change would save (its node runs, events and execution,
    each once, in order) instead of saving them, for one statement to write."""
    writes = Writes()
    token = _deferred.set(writes)
    try:
        yield writes
    finally:
        _deferred.reset(token)


def _save(row, **save_options) -> None:
    writes = _deferred.get()
    if writes is None:
        row.save(**save_options)
    else:
        writes.add(row)


def event_stored(event: ExecutionEvent) -> None:
    """Announce a stored event (``executions.signals.event_recorded``); an event
    inserted without ``save()`` is marked as stored first."""
    event._state.adding = False
    event._state.db = connection.alias
    metrics.event_recorded(event.type)
    event_recorded.send(sender=ExecutionEvent, event=event, using=connection.alias)
