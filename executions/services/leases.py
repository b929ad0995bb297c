"""Runners' claims: lease renewals, lost runners, dispatches that went unanswered."""

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from executions.clock import database_now, locked_now
from executions.models import Execution, ExecutionRun, ExecutionStatus, RunOutcome
from executions.runners import get_runner
from executions.services.endings import execution_finish
from executions.services.eventlog import (
    change_status,
    check_claim,
    locked_with_workflow,
    log_append,
    stop_nodes,
    text_cut,
)

# Pending executions looked at per maintenance pass.
REDISPATCH_BATCH = 500
# The wait before a re-dispatch doubles with each one, this many times at most.
REDISPATCH_DOUBLINGS = 5
# The column's length: a longer reason for a run's end is cut to fit it.
REASON_MAX_LENGTH = ExecutionRun._meta.get_field("reason").max_length


def executions_lease_renew(*, claim_tokens: list) -> set:
    """Extend the leases of the runs holding these claims; return the claims still held."""
    running = Execution.objects.filter(status=ExecutionStatus.RUNNING, claim_token__in=claim_tokens)
    with transaction.atomic():
        # Locked in the order of their ids, as a batch of records locks them
        # (services.records), so the two never wait on each other in a cycle.
        held = list(running.select_for_update().order_by("id").values_list("id", "claim_token"))
        # Only the lease moves: no state changes, so no event. It is dated by
        # the database's clock, the one every runner judges it by.
        Execution.objects.filter(id__in=[id for id, _ in held]).update(
            lease_expires_at=Now() + timedelta(seconds=settings.EXECUTIONS_LEASE_SECONDS)
        )
    return {token for _, token in held}


def execution_interrupt(
    *, execution_id: Any, reason: str, claim_token: Any = None
) -> Execution | None:
    """A running execution lost its runner (``reason`` says how): cancel it if
    that was asked for, else run it again from the start if its workflow allows
    that, else fail it. ``None`` if it is not running any more, or (without
    ``claim_token``) its lease has not expired by the database's clock."""
    with transaction.atomic():
        execution = locked_with_workflow(execution_id)
        if execution.status != ExecutionStatus.RUNNING:
            return None
        if claim_token is None and execution.lease_expires_at > locked_now(execution):
            return None
        check_claim(execution, claim_token)
        if execution.cancel_requested_at is not None:
            return execution_finish(
                execution_id=execution.id,
                status=ExecutionStatus.CANCELLED,
                log=f"{reason}; the execution is cancelled, as was requested",
            )
        limit = settings.EXECUTIONS_MAX_RUNS
        if execution.workflow.retry_on_worker_loss and execution.runs < limit:
            return _requeue(execution, reason)
        why = f"{reason}; the execution was lost"
        if execution.workflow.retry_on_worker_loss:
            why += f" (it already ran {execution.runs} times, the limit is {limit})"
        return execution_finish(
            execution_id=execution.id, status=ExecutionStatus.FAILED, error=why + "."
        )


def executions_redispatch_stale(*, older_than: float, queued: int | None = None) -> int:
    """Dispatch again the pending executions whose dispatch went unanswered; how many.

    Nothing tells a dispatch the broker lost from one waiting behind others
    (every worker busy), so re-dispatching is bounded lest a backlog feed itself:
    an execution is due ``older_than`` seconds after its dispatch and twice as
    long after each re-dispatch (``Execution.redispatches``); each re-dispatch
    is claimed by a conditional ``UPDATE`` of ``dispatched_at``, so of several
    maintenance loops one sends it; and given ``queued``, the dispatches waiting
    in the broker, at most ``pending - queued`` are sent: re-dispatching never
    takes the queue past one task per pending execution, and sends nothing
    while it holds that many.
    """
    now = database_now()
    runner = get_runner()
    count = 0
    for execution_id, dispatched_at, redispatches in _stale(now, older_than, queued):
        if _redispatch_claim(execution_id, dispatched_at, redispatches, now):
            transaction.on_commit(partial(runner.dispatch, execution_id), robust=True)
            count += 1
    return count


def _stale(now: datetime, older_than: float, queued: int | None) -> list[tuple]:
    """``(id, dispatched_at, redispatches)`` of the executions to dispatch again, oldest first."""
    stale = Execution.objects.filter(
        _due_for_redispatch(now, older_than),
        status=ExecutionStatus.PENDING,
        dispatched_at__lt=now - timedelta(seconds=older_than),
    ).order_by("dispatched_at", "id")
    candidates = list(stale.values_list("id", "dispatched_at", "redispatches")[:REDISPATCH_BATCH])
    if candidates and queued is not None:
        missing = Execution.objects.filter(status=ExecutionStatus.PENDING).count() - queued
        candidates = candidates[: max(0, missing)]
    return candidates


def _redispatch_claim(
    execution_id: Any, dispatched_at: datetime, times: int, now: datetime
) -> bool:
    """Whether this loop moved the dispatch time on, as read, and may send it.

    Each claim commits by itself: no loop holds rows that another waits for.
    """
    claimed = Execution.objects.filter(
        id=execution_id,
        status=ExecutionStatus.PENDING,
        dispatched_at=dispatched_at,
        redispatches=times,
    ).update(dispatched_at=now, redispatches=F("redispatches") + 1)
    return claimed == 1


def _due_for_redispatch(now: datetime, older_than: float) -> Q:
    """Re-dispatched ``n`` times: due ``older_than * 2**n`` seconds after the last."""
    due = Q()
    for doublings in range(REDISPATCH_DOUBLINGS + 1):
        cutoff = now - timedelta(seconds=older_than * 2**doublings)
        times = (
            Q(redispatches=doublings)
            if doublings < REDISPATCH_DOUBLINGS
            else Q(redispatches__gte=doublings)
        )
        due |= times & Q(dispatched_at__lt=cutoff)
    return due


def _requeue(execution: Execution, reason: str) -> Execution:
    stop_nodes(execution, skip_pending=False)
    # This run ends here; a run that ends the execution ends with it instead.
    ExecutionRun.objects.filter(execution=execution, number=execution.runs).update(
        ended_at=locked_now(execution),
        outcome=RunOutcome.REQUEUED,
        reason=text_cut(reason, REASON_MAX_LENGTH - 1),
    )
    log_append(execution, None, "warning", f"{reason}; running the execution again from the start")
    execution.claim_token = None
    execution.lease_expires_at = None
    execution.dispatched_at = locked_now(execution)
    execution.redispatches = 0
    transaction.on_commit(partial(get_runner().dispatch, execution.id), robust=True)
    # Its progress stays: a rerun reports progress again from where the first
    # run got to, never lower.
    return change_status(
        execution,
        status=ExecutionStatus.PENDING,
        message=f"Waiting to run again ({reason})",
        started_at=None,
    )
