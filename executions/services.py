"""Every write of the executions app.

Each change of an execution's state goes through ``_execution_change``: it
locks the row, checks the transition, appends the event with the next ``seq``
and saves the state, all in one transaction. The event's ``post_save`` signal
pushes it to subscribers after commit.
"""

from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from executions.dispatch import execution_dispatch
from executions.exceptions import InvalidTransition, WorkflowInUse
from executions.models import EventType, Execution, ExecutionEvent, ExecutionStatus, Workflow
from executions.states import TERMINAL_STATUSES, can_transition

_UNSET: Any = object()


def workflow_create(
    *, owner: AbstractBaseUser, name: str, definition: dict, description: str = ""
) -> Workflow:
    return Workflow.objects.create(
        owner=owner, name=name, description=description, definition=definition
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
            workflow=workflow, owner=owner, input_data=input_data, message="Waiting to run"
        )
        _event_append(execution, EventType.STATUS, execution.state_data())
        execution.save(update_fields=["last_seq", "last_event_at"])
        transaction.on_commit(partial(execution_dispatch, execution.id), robust=True)
    return execution


def execution_start(*, execution_id: Any) -> Execution | None:
    """Claim a pending execution for running; ``None`` if it is not pending any more."""
    with transaction.atomic():
        execution = (
            Execution.objects.select_for_update(of=("self",))
            .select_related("workflow")
            .get(id=execution_id)
        )
        if execution.status != ExecutionStatus.PENDING:
            return None
        return _execution_change(
            execution,
            status=ExecutionStatus.RUNNING,
            message="Started",
            started_at=timezone.now(),
        )


def execution_progress(
    *, execution_id: Any, message: str, progress: int | None = None
) -> Execution:
    """Record a running execution's new message and (never decreasing) progress."""
    with transaction.atomic():
        execution = _locked(execution_id)
        progress = execution.progress if progress is None else max(execution.progress, progress)
        return _execution_change(
            execution, status=ExecutionStatus.RUNNING, message=message, progress=progress
        )


def execution_complete(*, execution_id: Any, result: Any) -> Execution:
    with transaction.atomic():
        execution = _locked(execution_id)
        return _execution_finish(
            execution, status=ExecutionStatus.COMPLETED, progress=100, result=result
        )


def execution_fail(*, execution_id: Any, error: str) -> Execution:
    with transaction.atomic():
        execution = _locked(execution_id)
        return _execution_finish(execution, status=ExecutionStatus.FAILED, error=error)


def execution_log(*, execution_id: Any, node_id: str | None, level: str, message: str) -> None:
    """Append a log line to a running execution's event log."""
    with transaction.atomic():
        execution = _locked(execution_id)
        if execution.status in TERMINAL_STATUSES:
            raise InvalidTransition(f"Execution {execution.id} has ended; it takes no more logs.")
        data = {"node_id": node_id, "level": level, "message": message}
        _event_append(execution, EventType.LOG, data)
        execution.save(update_fields=["last_seq", "last_event_at"])


def _locked(execution_id: Any) -> Execution:
    return Execution.objects.select_for_update().get(id=execution_id)


def _execution_finish(execution: Execution, *, status: str, **changes: Any) -> Execution:
    now = timezone.now()
    if execution.started_at is not None:
        changes["execution_time"] = (now - execution.started_at).total_seconds()
    message = ("Completed" if status == ExecutionStatus.COMPLETED else "Failed") + (
        f" in {changes['execution_time']:.2f} s" if "execution_time" in changes else ""
    )
    return _execution_change(execution, status=status, message=message, finished_at=now, **changes)


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


def _event_append(execution: Execution, event_type: str, data: dict) -> ExecutionEvent:
    """Append the next event; the caller holds the row lock and saves the execution."""
    now = timezone.now()
    execution.last_seq += 1
    execution.last_event_at = now
    return ExecutionEvent.objects.create(
        execution=execution, seq=execution.last_seq, type=event_type, data=data, created_at=now
    )
