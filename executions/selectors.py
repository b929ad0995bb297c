"""Reads shared by the REST API, the WebSocket consumer and the admin."""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.db.models.functions import Now

from executions.models import Execution, ExecutionEvent, ExecutionStatus, Workflow


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
    return executions_visible_to(user).filter(id=execution_id).first()


def events_after(
    execution_id: Any, seq: int, *, upto: int | None = None, limit: int | None = None
) -> list[ExecutionEvent]:
    """The stored events with ``seq > seq`` (and ``<= upto``), oldest first."""
    events = ExecutionEvent.objects.filter(execution_id=execution_id, seq__gt=seq)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    events = events.order_by("seq")
    return list(events if limit is None else events[:limit])


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
