"""Reads shared by the REST API, the WebSocket consumer and the admin."""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from executions.models import Execution, ExecutionEvent, Workflow


def workflows_visible_to(user: AbstractBaseUser) -> QuerySet[Workflow]:
    """Workflows the user owns; staff see all."""
    workflows = Workflow.objects.all()
    return workflows if user.is_staff else workflows.filter(owner=user)


def executions_visible_to(user: AbstractBaseUser) -> QuerySet[Execution]:
    """Executions the user owns; staff see all."""
    executions = Execution.objects.all()
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
