"""Runners' claims: lease renewals, lost runners, dispatches that went unanswered."""

from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from executions import dispatch
from executions.models import Execution, ExecutionStatus
from executions.services.endings import execution_finish
from executions.services.eventlog import (
    change_status,
    check_claim,
    locked_with_workflow,
    log_append,
    stop_nodes,
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
        execution = locked_with_workflow(execution_id)
        if execution.status != ExecutionStatus.RUNNING:
            return None
        if claim_token is None and execution.lease_expires_at > timezone.now():
            return None
        check_claim(execution, claim_token)
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
            transaction.on_commit(partial(dispatch.execution_dispatch, execution.id), robust=True)
            count += 1
    return count


def _requeue(execution: Execution, reason: str) -> Execution:
    stop_nodes(execution, skip_pending=False)
    log_append(execution, None, "warning", f"{reason}; running the execution again from the start")
    execution.claim_token = None
    execution.lease_expires_at = None
    execution.dispatched_at = timezone.now()
    transaction.on_commit(partial(dispatch.execution_dispatch, execution.id), robust=True)
    return change_status(
        execution,
        status=ExecutionStatus.PENDING,
        progress=0,
        message=f"Waiting to run again ({reason})",
        started_at=None,
    )
