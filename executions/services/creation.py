"""New executions: stored pending with their first event and tags, within their
owner's cap on active executions, and dispatched after commit."""

import logging
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext as _

from executions import log_context
from executions.clock import database_now
from executions.exceptions import TooManyActiveExecutions
from executions.models import (
    EventType,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    ExecutionTag,
    Workflow,
)
from executions.runners import get_runner
from executions.services.eventlog import event_stored, status_data
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
        runner = get_runner()
        for execution in executions:
            transaction.on_commit(partial(runner.dispatch, execution.id), robust=True)
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
