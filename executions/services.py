"""Every write of the executions app.

Each change of an execution goes through one transaction that locks the
execution row, checks the transition, appends its events with the next
``seq`` values and saves the new state (on PostgreSQL a log line does all
of that in one statement: ``executions.log_statement``). The events'
``post_save`` signal pushes them to subscribers after commit. Once an
execution has reached a terminal status nothing more is appended: the
terminal ``status`` event is always the last of its log.
"""

import json
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from executions.dispatch import execution_cancel_notify, execution_dispatch
from executions.exceptions import AlreadyFinished, ClaimLost, InvalidTransition, WorkflowInUse
from executions.log_statement import log_line_append
from executions.models import (
    EventType,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    NodeRun,
    NodeStatus,
    Workflow,
)
from executions.states import NODE_FINISHED_STATUSES, TERMINAL_STATUSES, can_transition

_UNSET: Any = object()

FINISH_MESSAGES = {
    ExecutionStatus.COMPLETED: "Completed",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.CANCELLED: "Cancelled",
}


def workflow_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    definition: dict,
    description: str = "",
    retry_on_worker_loss: bool = False,
) -> Workflow:
    return Workflow.objects.create(
        owner=owner,
        name=name,
        description=description,
        definition=definition,
        retry_on_worker_loss=retry_on_worker_loss,
    )


def workflow_update(*, workflow: Workflow, **fields: Any) -> Workflow:
    for name, value in fields.items():
        setattr(workflow, name, value)
    workflow.save()
    return workflow


def workflow_delete(*, workflow: Workflow) -> None:
    try:
        workflow.delete()
    except ProtectedError as exc:
        raise WorkflowInUse(
            "This workflow has executions and cannot be deleted; its executions are its history."
        ) from exc


def execution_create(*, owner: AbstractBaseUser, workflow: Workflow, input_data: dict) -> Execution:
    """Store a pending execution with its first event and dispatch it after commit."""
    with transaction.atomic():
        execution = Execution.objects.create(
            workflow=workflow,
            owner=owner,
            input_data=input_data,
            message="Waiting to run",
            dispatched_at=timezone.now(),
        )
        _event_append(execution, EventType.STATUS, execution.state_data())
        execution.save(update_fields=["last_seq", "last_event_at"])
        transaction.on_commit(partial(execution_dispatch, execution.id), robust=True)
    return execution


def execution_start(*, execution_id: Any, runner: str = "") -> Execution | None:
    """Claim a pending execution for ``runner``; ``None`` if it is not pending any more.

    The claim comes with a fresh ``claim_token`` that the runner passes to every
    later write, and a lease that it must renew (``executions_lease_renew``).
    """
    with transaction.atomic():
        execution = (
            Execution.objects.select_for_update(of=("self",))
            .select_related("workflow")
            .get(id=execution_id)
        )
        if execution.status != ExecutionStatus.PENDING:
            return None
        now = timezone.now()
        _log_append(execution, None, "info", "Execution started")
        return _execution_change(
            execution,
            status=ExecutionStatus.RUNNING,
            message="Started",
            started_at=now,
            claimed_by=runner,
            claim_token=uuid.uuid4(),
            lease_expires_at=now + timedelta(seconds=settings.EXECUTIONS_LEASE_SECONDS),
            runs=execution.runs + 1,
        )


def execution_nodes_prepare(
    *, execution_id: Any, nodes: list[tuple[str, str, int]], claim_token: Any = None
) -> None:
    """Store a pending ``NodeRun`` per ``(node_id, node_type, max_attempts)``."""
    with transaction.atomic():
        _locked_open(execution_id, claim_token)
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
    output: Any = _UNSET,
    error: str | None = None,
    message: str | None = None,
    progress: int | None = None,
    claim_token: Any = None,
) -> None:
    """Record a node's new status as a ``node`` event, with the execution's new
    message and progress (a ``status`` event) in the same transaction when given."""
    with transaction.atomic():
        execution = _locked_open(execution_id, claim_token)
        run = NodeRun.objects.get(execution=execution, node_id=node_id)
        _node_event_append(execution, run, status, attempt=attempt, output=output, error=error)
        if message is None and progress is None:
            execution.save(update_fields=["last_seq", "last_event_at"])
        else:
            _execution_change(
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
        execution = _locked_open(execution_id, claim_token)
        runs = NodeRun.objects.filter(execution=execution, node_id__in=node_ids)
        for run in sorted(runs, key=lambda run: node_ids.index(run.node_id)):
            _node_event_append(execution, run, NodeStatus.SKIPPED)
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
        execution = _locked_open(execution_id, claim_token)
        return _execution_change(
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
) -> None:
    """Append a log line to an execution that has not ended."""
    data = _log_data(node_id, level, message)
    if connection.vendor == "postgresql" and log_line_append(
        execution_id=execution_id, claim_token=claim_token, data=data
    ):
        return
    # Other databases, and the reason a one-statement append wrote nothing.
    with transaction.atomic():
        execution = _locked_open(execution_id, claim_token)
        _event_append(execution, EventType.LOG, data)
        execution.save(update_fields=["last_seq", "last_event_at"])


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
        execution = Execution.objects.select_for_update().get(id=execution_id)
        _check_claim(execution, claim_token)
        return _finish_locked(execution, status, result=result, error=error, log=log)


def execution_complete_with_node(
    *, execution_id: Any, node_id: str, output: Any, result: Any, claim_token: Any = None
) -> Execution:
    """Record the last node's completion and complete the execution, in one
    transaction: the run's end is one commit and one push, and its stream goes
    from the node's ``completed`` straight to the terminal ``status`` (progress
    100) with no ``running`` at 100% in between."""
    with transaction.atomic():
        execution = _locked_open(execution_id, claim_token)
        runs = list(execution.nodes.order_by("position"))
        run = next(run for run in runs if run.node_id == node_id)
        _node_event_append(execution, run, NodeStatus.COMPLETED, output=output)
        return _finish_locked(execution, ExecutionStatus.COMPLETED, result=result, runs=runs)


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
    _stop_nodes(execution, skip_pending=True, runs=runs)
    if log:
        _log_append(execution, None, "error" if status == ExecutionStatus.FAILED else "info", log)
    now = timezone.now()
    changes: dict[str, Any] = {"finished_at": now, "error": error, "lease_expires_at": None}
    if status == ExecutionStatus.COMPLETED:
        changes.update(progress=100, result=result)
    message = FINISH_MESSAGES[status]
    if execution.started_at is not None:
        changes["execution_time"] = (now - execution.started_at).total_seconds()
        message += f" in {changes['execution_time']:.2f} s"
    return _execution_change(execution, status=status, message=message, **changes)


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
        execution = Execution.objects.select_for_update().get(id=execution_id)
        if execution.status in TERMINAL_STATUSES:
            raise AlreadyFinished(
                f"Execution {execution.id} has already ended ({execution.status}); "
                "there is nothing to cancel."
            )
        if execution.status == ExecutionStatus.PENDING:
            return _finish_locked_cancelled(execution, requested_by)
        if execution.cancel_requested_at is None:
            execution.cancel_requested_at = timezone.now()
            who = f" by {requested_by.get_username()}" if requested_by else ""
            _log_append(execution, None, "info", f"Cancellation requested{who}")
            execution.save(update_fields=["cancel_requested_at", "last_seq", "last_event_at"])
            transaction.on_commit(partial(execution_cancel_notify, execution.id), robust=True)
        return execution


def _finish_locked_cancelled(execution: Execution, requested_by) -> Execution:
    who = f" by {requested_by.get_username()}" if requested_by else ""
    execution.cancel_requested_at = timezone.now()
    _log_append(execution, None, "info", f"Cancelled{who} before it started")
    return _execution_change(
        execution,
        status=ExecutionStatus.CANCELLED,
        message="Cancelled before it started",
        finished_at=execution.cancel_requested_at,
    )


def executions_lease_renew(*, claim_tokens: list) -> set:
    """Extend the leases of the runs holding these claims; return the claims still held."""
    held = Execution.objects.filter(status=ExecutionStatus.RUNNING, claim_token__in=claim_tokens)
    # Only the lease moves: no state changes, so no event and no row lock.
    held.update(
        lease_expires_at=timezone.now() + timedelta(seconds=settings.EXECUTIONS_LEASE_SECONDS)
    )
    return set(held.values_list("claim_token", flat=True))


def execution_interrupt(
    *, execution_id: Any, reason: str, claim_token: Any = None
) -> Execution | None:
    """A running execution lost its runner (``reason`` says how): run it again from
    the start if its workflow allows that, else fail it. ``None`` if it is not
    running any more, or (without ``claim_token``) its lease has not expired."""
    with transaction.atomic():
        execution = (
            Execution.objects.select_for_update(of=("self",))
            .select_related("workflow")
            .get(id=execution_id)
        )
        if execution.status != ExecutionStatus.RUNNING:
            return None
        if claim_token is None and execution.lease_expires_at > timezone.now():
            return None
        _check_claim(execution, claim_token)
        limit = settings.EXECUTIONS_MAX_RUNS
        if execution.workflow.retry_on_worker_loss and execution.runs < limit:
            return _requeue(execution, reason)
        why = f"{reason}; the execution was lost"
        if execution.workflow.retry_on_worker_loss:
            why += f" (it already ran {execution.runs} times, the limit is {limit})"
        return execution_finish(
            execution_id=execution.id, status=ExecutionStatus.FAILED, error=why + "."
        )


def executions_redispatch_stale(*, older_than: float) -> int:
    """Dispatch again the pending executions dispatched longer than ``older_than`` s ago."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    count = 0
    with transaction.atomic():
        stale = Execution.objects.select_for_update(skip_locked=True).filter(
            status=ExecutionStatus.PENDING, dispatched_at__lt=cutoff
        )
        for execution in stale[:500]:
            execution.dispatched_at = timezone.now()
            execution.save(update_fields=["dispatched_at"])
            transaction.on_commit(partial(execution_dispatch, execution.id), robust=True)
            count += 1
    return count


def _requeue(execution: Execution, reason: str) -> Execution:
    _stop_nodes(execution, skip_pending=False)
    _log_append(execution, None, "warning", f"{reason}; running the execution again from the start")
    execution.claim_token = None
    execution.lease_expires_at = None
    execution.dispatched_at = timezone.now()
    transaction.on_commit(partial(execution_dispatch, execution.id), robust=True)
    return _execution_change(
        execution,
        status=ExecutionStatus.PENDING,
        progress=0,
        message=f"Waiting to run again ({reason})",
        started_at=None,
    )


def _stop_nodes(
    execution: Execution, *, skip_pending: bool, runs: list[NodeRun] | None = None
) -> None:
    """Cancel the nodes running (or waiting to retry); skip the pending ones if asked.

    ``runs``: the execution's nodes in order, when the caller has read them already.
    """
    for run in execution.nodes.order_by("position") if runs is None else runs:
        if run.status == NodeStatus.PENDING and skip_pending:
            _node_event_append(execution, run, NodeStatus.SKIPPED)
        elif run.status == NodeStatus.RUNNING or (
            run.status == NodeStatus.FAILED and run.attempts < run.max_attempts
        ):
            _node_event_append(execution, run, NodeStatus.CANCELLED)


def _check_claim(execution: Execution, claim_token: Any) -> None:
    if claim_token is not None and execution.claim_token != claim_token:
        raise ClaimLost(f"Execution {execution.id} is no longer claimed by this runner; it stops.")


def _locked_open(execution_id: Any, claim_token: Any = None) -> Execution:
    """The locked execution, which must not have ended (and must still be this
    runner's, when ``claim_token`` is given)."""
    execution = Execution.objects.select_for_update().get(id=execution_id)
    _check_claim(execution, claim_token)
    if execution.status in TERMINAL_STATUSES:
        raise InvalidTransition(
            f"Execution {execution.id} has ended ({execution.status}); nothing more is recorded."
        )
    return execution


def _execution_change(execution: Execution, *, status: str, **changes: Any) -> Execution:
    """Apply a locked execution's change and append its ``status`` event."""
    if not can_transition(execution.status, status):
        raise InvalidTransition(
            f"Execution {execution.id} cannot go from {execution.status} to {status}."
        )
    execution.status = status
    for name, value in changes.items():
        setattr(execution, name, value)
    _event_append(execution, EventType.STATUS, execution.state_data())
    execution.save()
    return execution


def _node_event_append(
    execution: Execution,
    run: NodeRun,
    status: str,
    *,
    attempt: int | None = None,
    output: Any = _UNSET,
    error: str | None = None,
) -> None:
    now = timezone.now()
    if status == NodeStatus.RUNNING:
        run.attempts = attempt or run.attempts + 1
        run.started_at, run.finished_at, run.duration, run.error = now, None, None, None
    elif status in NODE_FINISHED_STATUSES and run.status == NodeStatus.RUNNING:
        run.finished_at = now
        run.duration = (now - run.started_at).total_seconds()
    if status == NodeStatus.COMPLETED:
        run.output = None if output is _UNSET else output
    if status == NodeStatus.FAILED:
        run.error = error
    run.status = status
    run.save()
    data: dict[str, Any] = {
        "node_id": run.node_id,
        "node_type": run.node_type,
        "status": status,
        "attempt": run.attempts,
    }
    if status == NodeStatus.COMPLETED:
        data.update(_event_output(run.output))
    if status == NodeStatus.FAILED:
        data["error"] = error
    if status in NODE_FINISHED_STATUSES and run.duration is not None and run.finished_at == now:
        data["duration"] = run.duration
    _event_append(execution, EventType.NODE, data)


def _event_output(output: Any) -> dict:
    """The output as sent in a node event: cut to the configured size, with a marker."""
    text = json.dumps(output)
    limit = settings.EXECUTIONS_EVENT_OUTPUT_LIMIT
    if len(text) <= limit:
        return {"output": output}
    return {"output": text[:limit] + "…", "output_truncated": True, "output_size": len(text)}


def _log_data(node_id: str | None, level: str, message: str) -> dict:
    return {"node_id": node_id, "level": level, "message": message}


def _log_append(execution: Execution, node_id: str | None, level: str, message: str) -> None:
    _event_append(execution, EventType.LOG, _log_data(node_id, level, message))


def _event_append(execution: Execution, event_type: str, data: dict) -> ExecutionEvent:
    """Append the next event; the caller holds the row lock and saves the execution.

    An event is never dated before the one it follows, even if the clock of
    this process is behind the clock of the one that wrote that one.
    """
    now = timezone.now()
    if execution.last_event_at is not None:
        now = max(now, execution.last_event_at)
    execution.last_seq += 1
    execution.last_event_at = now
    return ExecutionEvent.objects.create(
        execution=execution, seq=execution.last_seq, type=event_type, data=data, created_at=now
    )
