"""A run as it goes: created, claimed, its nodes, progress and log lines."""

import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils.translation import gettext as _

from executions import dispatch, log_context
from executions.clock import database_now, locked_now
from executions.exceptions import TooManyActiveExecutions
from executions.models import (
    EventType,
    Execution,
    ExecutionEvent,
    ExecutionRun,
    ExecutionStatus,
    ExecutionTag,
    NodeRun,
    NodeStatus,
    Workflow,
)
from executions.services.eventlog import (
    UNSET,
    change_status,
    event_append,
    event_stored,
    locked_open,
    locked_with_workflow,
    log_append,
    log_data,
    log_line_admit,
    node_event_append,
    status_data,
)
from executions.services.log_statement import log_line_append
from executions.tags import tags_clean

logger = logging.getLogger(__name__)

# The statuses counted against EXECUTIONS_MAX_ACTIVE_PER_USER.
ACTIVE_STATUSES = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


class ExecutionItem(NamedTuple):
    """What to start: a workflow, its input and (optionally) the execution's tags."""

    workflow: Workflow
    input_data: dict
    tags: Sequence[str] = ()


def execution_create(
    *,
    owner: AbstractBaseUser,
    workflow: Workflow,
    input_data: dict,
    tags: Sequence[str] = (),
) -> Execution:
    """Store a pending execution of the workflow's current definition, with its first
    event and its tags, and dispatch it after commit.

    Raises ``TooManyActiveExecutions`` (and stores nothing) when ``owner`` already
    has ``EXECUTIONS_MAX_ACTIVE_PER_USER`` executions pending or running, and
    ``InvalidTags`` when ``tags`` break a rule of ``executions.tags``.
    """
    (execution,) = executions_create(owner=owner, items=[(workflow, input_data, tags)])
    return execution


def executions_create(
    *, owner: AbstractBaseUser, items: Sequence[ExecutionItem | tuple]
) -> list[Execution]:
    """Store a pending execution per ``ExecutionItem`` (or ``(workflow, input_data)``),
    in order and in one transaction, each with its first event and its tags; push
    and dispatch each after commit, as ``execution_create`` does one.

    Raises ``TooManyActiveExecutions`` (and stores nothing) when they would take
    ``owner`` past ``EXECUTIONS_MAX_ACTIVE_PER_USER``, and ``InvalidTags`` (before
    any query) when an item's tags break a rule of ``executions.tags``.
    """
    items = [ExecutionItem(*item) for item in items]
    tags = [tags_clean(item.tags) for item in items]
    with transaction.atomic():
        check_active_limit(owner, adding=len(items))
        # One clock read for all: each is dispatched, and its first event dated, now.
        now = database_now()
        executions = [
            Execution(
                workflow=item.workflow,
                owner=owner,
                input_data=item.input_data,
                definition=item.workflow.definition,
                message="Waiting to run",
                last_seq=1,
                last_event_at=now,
                dispatched_at=now,
                tags=item_tags,
                request_id=log_context.request_id.get() or "",
            )
            for item, item_tags in zip(items, tags, strict=True)
        ]
        Execution.objects.bulk_create(executions)
        events = ExecutionEvent.objects.bulk_create(
            ExecutionEvent(
                execution=execution,
                seq=1,
                type=EventType.STATUS,
                data=status_data(execution),
                created_at=now,
            )
            for execution in executions
        )
        tags_store(executions)
        for event in events:
            event_stored(event)
        # After every push (on_commit keeps this order): a dispatch may take a
        # round trip to a broker, which would hold back the pushes behind it.
        for execution in executions:
            transaction.on_commit(partial(dispatch.execution_dispatch, execution.id), robust=True)
    for execution in executions:
        logger.info("Execution %s created", execution.id, extra={"execution_id": execution.id})
    return executions


def tags_store(executions: list[Execution]) -> None:
    """The tag rows of new executions, in one statement; none when none has tags."""
    rows = [
        ExecutionTag(execution=execution, tag=tag)
        for execution in executions
        for tag in execution.tags
    ]
    if rows:
        ExecutionTag.objects.bulk_create(rows)


def check_active_limit(owner: AbstractBaseUser, *, adding: int = 1) -> None:
    """Refuse ``adding`` new executions of ``owner`` that would take them past
    ``EXECUTIONS_MAX_ACTIVE_PER_USER``.

    Called inside the creating transaction. The owner's user row is locked first
    (PostgreSQL), so that the creates of one user count and insert one at a time;
    SQLite transactions here are immediate, which serializes them already.
    """
    limit = settings.EXECUTIONS_MAX_ACTIVE_PER_USER
    if limit <= 0:
        return
    list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk"))
    active = Execution.objects.filter(owner=owner, status__in=ACTIVE_STATUSES).count()
    if active + adding <= limit:
        return
    values = {"active": active, "adding": adding, "limit": limit, "room": max(0, limit - active)}
    if adding == 1:
        message = _(
            "Too many active executions: you have %(active)d pending or running, the limit "
            "is %(limit)d per user (EXECUTIONS_MAX_ACTIVE_PER_USER). Wait for one to finish, "
            "or cancel one, then start this again."
        )
    else:
        message = _(
            "Too many active executions: you have %(active)d pending or running and asked "
            "for %(adding)d more, the limit is %(limit)d per user "
            "(EXECUTIONS_MAX_ACTIVE_PER_USER). Start at most %(room)d now, or wait for some "
            "to finish."
        )
    raise TooManyActiveExecutions(message % values)


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
