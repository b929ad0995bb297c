"""The end of an execution: completed, failed or cancelled, always its last event."""

from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils.translation import gettext as _

from executions.clock import locked_now, locked_now_mark
from executions.exceptions import AlreadyFinished, InvalidTransition
from executions.models import Execution, ExecutionStatus, NodeRun, NodeStatus
from executions.runners import get_runner
from executions.services.eventlog import (
    change_status,
    deferred_writes,
    locked,
    locked_open,
    log_append,
    node_event_append,
    stop_nodes,
    stored_error,
    with_database_time,
)
from executions.services.one_statement import row_values, rows_write
from executions.states import TERMINAL_STATUSES, can_transition

FINISH_MESSAGES = {
    ExecutionStatus.COMPLETED: "Completed",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.CANCELLED: "Cancelled",
}


def execution_finish(
    *,
    execution_id: Any,
    status: str,
    result: Any = None,
    error: str | None = None,
    log: str | None = None,
    claim_token: Any = None,
) -> Execution:
    """End an execution: stop its unfinished nodes, then append the terminal event.

    Nodes still running (or waiting to retry) end ``cancelled`` and nodes not
    started end ``skipped``, each with its event, all before the terminal
    ``status`` event in the same transaction.
    """
    with transaction.atomic():
        execution = locked(execution_id, claim_token)
        return _finish_locked(execution, status, result=result, error=error, log=log)


def execution_complete_with_node(
    *, execution_id: Any, node_id: str, output: Any, result: Any, claim_token: Any = None
) -> Execution:
    """Record the last node's completion and complete the execution, in one
    transaction: the run's end is one commit and one push, and its stream goes
    from the node's ``completed`` straight to the terminal ``status`` (progress
    100) with no ``running`` at 100% in between."""
    ended = _complete_in_one_statement(execution_id, node_id, output, result, claim_token)
    if ended is not None:
        return ended
    with transaction.atomic():
        execution = locked_open(execution_id, claim_token)
        runs = list(execution.nodes.order_by("position"))
        _complete_with_node(execution, runs, node_id, output, result)
        return execution


def _complete_with_node(
    execution: Execution, runs: list[NodeRun], node_id: str, output: Any, result: Any
) -> None:
    run = next(run for run in runs if run.node_id == node_id)
    node_event_append(execution, run, NodeStatus.COMPLETED, output=output)
    _finish_locked(execution, ExecutionStatus.COMPLETED, result=result, runs=runs)


def _complete_in_one_statement(
    execution_id: Any, node_id: str, output: Any, result: Any, claim_token: Any
) -> Execution | None:
    """The end written by ``one_statement`` (PostgreSQL): None, having written
    nothing, when it cannot be (another database, an execution that is not
    running, or whose log moved on since it was read)."""
    if connection.vendor != "postgresql":
        return None
    running = Execution.objects.filter(id=execution_id, status=ExecutionStatus.RUNNING)
    execution = with_database_time(running).first()
    if execution is None or (claim_token is not None and execution.claim_token != claim_token):
        return None
    locked_now_mark(execution)
    runs = list(execution.nodes.order_by("position"))
    read = {row.pk: row_values(row) for row in [execution, *runs]}
    with deferred_writes() as writes:
        _complete_with_node(execution, runs, node_id, output, result)
    if not rows_write(execution, read=read, writes=writes, claim_token=claim_token):
        return None
    return execution


def _finish_locked(
    execution: Execution,
    status: str,
    *,
    result: Any = None,
    error: str | None = None,
    log: str | None = None,
    runs: list[NodeRun] | None = None,
) -> Execution:
    if not can_transition(execution.status, status):
        raise InvalidTransition(
            f"Execution {execution.id} cannot go from {execution.status} to {status}."
        )
    stop_nodes(execution, skip_pending=True, runs=runs)
    if log:
        log_append(execution, None, "error" if status == ExecutionStatus.FAILED else "info", log)
    now = locked_now(execution)
    changes: dict[str, Any] = {
        "finished_at": now,
        "error": stored_error(error),
        "lease_expires_at": None,
    }
    if status == ExecutionStatus.COMPLETED:
        changes.update(progress=100, result=result)
    message = FINISH_MESSAGES[status]
    if execution.started_at is not None:
        changes["execution_time"] = max(0.0, (now - execution.started_at).total_seconds())
        message += f" in {changes['execution_time']:.2f} s"
    return change_status(execution, status=status, message=message, **changes)


def execution_complete(*, execution_id: Any, result: Any) -> Execution:
    return execution_finish(
        execution_id=execution_id, status=ExecutionStatus.COMPLETED, result=result
    )


def execution_fail(*, execution_id: Any, error: str) -> Execution:
    return execution_finish(execution_id=execution_id, status=ExecutionStatus.FAILED, error=error)


def execution_cancel(
    *, execution_id: Any, requested_by: AbstractBaseUser | None = None
) -> Execution:
    """Cancel a pending execution at once, or ask the runner of a running one to stop."""
    with transaction.atomic():
        execution = locked(execution_id)
        if execution.status in TERMINAL_STATUSES:
            raise AlreadyFinished(
                _("Execution %(id)s has already ended (%(status)s); there is nothing to cancel.")
                % {"id": execution.id, "status": execution.status}
            )
        if execution.status == ExecutionStatus.PENDING:
            return _finish_locked_cancelled(execution, requested_by)
        if execution.cancel_requested_at is None:
            execution.cancel_requested_at = locked_now(execution)
            who = f" by {requested_by.get_username()}" if requested_by else ""
            log_append(execution, None, "info", f"Cancellation requested{who}")
            execution.save(update_fields=["cancel_requested_at", "last_seq", "last_event_at"])
            transaction.on_commit(partial(get_runner().cancel_notify, execution.id), robust=True)
        return execution


def _finish_locked_cancelled(execution: Execution, requested_by) -> Execution:
    who = f" by {requested_by.get_username()}" if requested_by else ""
    execution.cancel_requested_at = locked_now(execution)
    log_append(execution, None, "info", f"Cancelled{who} before it started")
    return change_status(
        execution,
        status=ExecutionStatus.CANCELLED,
        message="Cancelled before it started",
        finished_at=execution.cancel_requested_at,
    )
