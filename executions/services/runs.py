"""A run as it goes: claimed, its nodes, progress and log lines."""

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from executions.clock import locked_now
from executions.models import (
    EventType,
    Execution,
    ExecutionRun,
    ExecutionStatus,
    NodeRun,
    NodeStatus,
)
from executions.services.eventlog import (
    UNSET,
    change_status,
    event_append,
    locked_open,
    locked_with_workflow,
    log_append,
    log_data,
    log_line_admit,
    node_event_append,
)
from executions.services.log_statement import log_line_append


def execution_start(
    *, execution_id: Any, runner: str = "", worker_id: Any = None
) -> Execution | None:
    """Claim a pending execution for ``runner``; ``None`` if it is not pending any more.

    The claim comes with a fresh ``claim_token`` that the runner passes to every
    later write, and a lease that it must renew (``executions_lease_renew``); the
    run is recorded with the runner's name and its process row (``worker_id``).
    """
    with transaction.atomic():
        execution = locked_with_workflow(execution_id)
        if execution.status != ExecutionStatus.PENDING:
            return None
        now = locked_now(execution)
        log_append(execution, None, "info", "Execution started")
        change_status(
            execution,
            status=ExecutionStatus.RUNNING,
            message="Started",
            started_at=now,
            claimed_by=runner,
            claim_token=uuid.uuid4(),
            lease_expires_at=now + timedelta(seconds=settings.EXECUTIONS_LEASE_SECONDS),
            runs=execution.runs + 1,
        )
        ExecutionRun.objects.create(
            execution=execution,
            number=execution.runs,
            worker_id=worker_id,
            worker_name=runner,
            started_at=now,
        )
        return execution


def execution_nodes_prepare(
    *, execution_id: Any, nodes: list[tuple[str, str, int]], claim_token: Any = None
) -> None:
    """Store a pending ``NodeRun`` per ``(node_id, node_type, max_attempts)``."""
    with transaction.atomic():
        locked_open(execution_id, claim_token)
        NodeRun.objects.filter(execution_id=execution_id).delete()
        NodeRun.objects.bulk_create(
            NodeRun(
                execution_id=execution_id,
                node_id=node_id,
                node_type=node_type,
                position=position,
                max_attempts=max_attempts,
            )
            for position, (node_id, node_type, max_attempts) in enumerate(nodes)
        )


def execution_node_update(
    *,
    execution_id: Any,
    node_id: str,
    status: str,
    attempt: int | None = None,
    output: Any = UNSET,
    error: str | None = None,
    message: str | None = None,
    progress: int | None = None,
    claim_token: Any = None,
) -> None:
    """Record a node's new status as a ``node`` event, with the execution's new
    message and progress (a ``status`` event) in the same transaction when given."""
    with transaction.atomic():
        execution = locked_open(execution_id, claim_token)
        run = NodeRun.objects.get(execution=execution, node_id=node_id)
        node_event_append(execution, run, status, attempt=attempt, output=output, error=error)
        if message is None and progress is None:
            execution.save(update_fields=["last_seq", "last_event_at"])
        else:
            change_status(
                execution,
                status=ExecutionStatus.RUNNING,
                message=execution.message if message is None else message,
                progress=max(execution.progress, progress or 0),
            )


def execution_nodes_skip(
    *, execution_id: Any, node_ids: list[str], claim_token: Any = None
) -> None:
    """Mark pending nodes ``skipped`` (downstream of a falsy condition)."""
    with transaction.atomic():
        execution = locked_open(execution_id, claim_token)
        runs = NodeRun.objects.filter(execution=execution, node_id__in=node_ids)
        for run in sorted(runs, key=lambda run: node_ids.index(run.node_id)):
            node_event_append(execution, run, NodeStatus.SKIPPED)
        execution.save(update_fields=["last_seq", "last_event_at"])


def execution_progress(
    *,
    execution_id: Any,
    progress: int | None = None,
    message: str | None = None,
    claim_token: Any = None,
) -> Execution:
    """Record a running execution's new (never decreasing) progress and/or message."""
    with transaction.atomic():
        execution = locked_open(execution_id, claim_token)
        return change_status(
            execution,
            status=ExecutionStatus.RUNNING,
            message=execution.message if message is None else message,
            progress=max(execution.progress, progress or 0),
        )


def execution_log(
    *,
    execution_id: Any,
    node_id: str | None,
    level: str,
    message: str,
    claim_token: Any = None,
) -> bool:
    """Append a log line to an execution that has not ended.

    ``False`` once its log is cut (``EXECUTIONS_MAX_LOG_LINES``,
    ``EXECUTIONS_MAX_LOG_BYTES``): one warning took this line's place, or the
    log had been cut before; later lines are not recorded either.
    """
    data = log_data(node_id, level, message)
    if connection.vendor in ("postgresql", "sqlite"):
        kept = log_line_append(execution_id=execution_id, claim_token=claim_token, data=data)
        if kept is not None:
            return kept
    # Other databases, and the reason a one-statement append wrote nothing.
    with transaction.atomic():
        execution = locked_open(execution_id, claim_token)
        recorded = log_line_admit(execution, data)
        if recorded is None:
            return False
        event_append(execution, EventType.LOG, recorded)
        execution.save(
            update_fields=["last_seq", "last_event_at", "log_lines", "log_bytes", "log_cut"]
        )
        return recorded is data
