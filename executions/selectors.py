"""Reads shared by the REST API, the WebSocket consumer and the admin."""

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connections, router
from django.db.models import QuerySet
from django.db.models.functions import Now

from executions.models import EventType, Execution, ExecutionEvent, ExecutionStatus, Workflow


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
