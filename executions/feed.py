"""The executions feed's data: which executions changed after a cursor, and their state.

Every change of an execution's feed-visible state (``FEED_MARKED_FIELDS``), by
whatever statement writes it, sets its row's ``feed_mark`` from the database's
triggers (migration 0009). A reader asks for the rows marked at or after its
cursor, and gets a new cursor taken *before* it read them:

- PostgreSQL: the mark is the id of the transaction that wrote the change,
  and a cursor is the ``xmin`` of a snapshot: every transaction with a lower
  id had ended by then. A change the read did not see was written by a
  transaction that had not ended when the cursor was taken, so its mark is at
  least the cursor, in whatever order the transactions commit.
- SQLite: writers take turns, so a counter moved inside each write
  transaction is in commit order, and a cursor is its next value.

So no change is missed; a read may send an execution again (one marked
between the cursor and the read), always in its state at that read, never
older than what was sent before. A long read is cut into pages in
``(feed_mark, id)`` order; the cursor of a page that is not the last goes on
from its last row, and the last page's cursor is the one taken before the
first page.
"""

import contextlib
import re
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core import checks
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from executions.clock import format_timestamp
from executions.exceptions import FeedCursorInvalid, InvalidTags
from executions.models import Execution, ExecutionStatus
from executions.selectors import executions_visible_to
from executions.tags import tag_check

# The fields whose change marks an execution for the feed (creation too).
FEED_MARKED_FIELDS = (
    "status",
    "progress",
    "message",
    "execution_time",
    "started_at",
    "finished_at",
)
# The execution's own fields (attribute names) ``feed_state_of`` reads.
FEED_STATE_FIELDS = frozenset(
    {"workflow_id", *FEED_MARKED_FIELDS, "created_at", "tags", "last_seq"}
)
# What a feed's read loads of an execution (and of its workflow, the name).
FEED_COLUMNS = (
    "id",
    "workflow",
    "workflow__name",
    "owner",
    *FEED_MARKED_FIELDS,
    "created_at",
    "tags",
    "last_seq",
    "feed_mark",
)
# Executions one read of changes returns at most, by default and at all.
FEED_PAGE_SIZE = 200
FEED_PAGE_MAX = 1000
FILTER_KEYS = ("workflow_id", "status", "tag")
_CURSOR = re.compile(r"(pg|sl):(\d{1,19})(?::(\d{1,19}):([0-9a-f]{32}))?")
_KINDS = {"postgresql": "pg", "sqlite": "sl"}


@dataclass(frozen=True)
class FeedFilter:
    """Which executions a feed sends; an empty filter: all the user may see."""

    workflow_id: uuid.UUID | None = None
    statuses: frozenset[str] = frozenset()
    tag: str | None = None

    def matches(self, execution: Execution) -> bool:
        """Whether ``execution`` (its current state) passes the filter, without a query."""
        return (
            (self.workflow_id is None or execution.workflow_id == self.workflow_id)
            and (not self.statuses or execution.status in self.statuses)
            and (self.tag is None or self.tag in execution.tags)
        )

    def admits(self, state: dict, *, any_status: bool = False) -> bool:
        """``matches`` for a state as ``feed_state`` made it; with ``any_status``,
        whatever its status."""
        return (
            (self.workflow_id is None or state["workflow_id"] == str(self.workflow_id))
            and (any_status or not self.statuses or state["status"] in self.statuses)
            and (self.tag is None or self.tag in state["tags"])
        )


class FeedChanges(NamedTuple):
    """One read of every execution's changes (``feed_changes``): ``(owner id, state)``
    pairs, the cursor to read on from, and whether more are waiting."""

    changes: list[tuple[Any, dict]]
    cursor: str
    more: bool


class FeedPage(NamedTuple):
    """One read: the executions' states, the cursor to read on from, and whether
    more changes are waiting behind this page (read again at once with ``cursor``)."""

    states: list[dict]
    cursor: str
    more: bool


@dataclass(frozen=True)
class _Cursor:
    # Changes not sent yet carry a mark >= floor ...
    floor: int
    # ... except, in a read cut into pages, those after this (mark, id).
    after: tuple[int, uuid.UUID] | None = None

    def encode(self) -> str:
        kind = _KINDS[connection.vendor]
        if self.after is None:
            return f"{kind}:{self.floor}"
        return f"{kind}:{self.floor}:{self.after[0]}:{self.after[1].hex}"


def feed_state(execution: Execution) -> dict:
    """The execution as the feed sends it. Load it with ``executions_for_feed()``
    (its workflow's name comes with it, in the same query)."""
    return feed_state_of(execution, execution.workflow.name)


def feed_state_of(execution: Execution, workflow_name: str | None) -> dict:
    """``feed_state`` of an execution as it is in memory (a writer's, as its change
    is recorded), with its workflow's name as given: None when not known."""
    return {
        "id": str(execution.id),
        "workflow_id": str(execution.workflow_id),
        "workflow_name": workflow_name,
        "status": execution.status,
        "progress": execution.progress,
        "message": execution.message,
        "execution_time": execution.execution_time,
        "created_at": format_timestamp(execution.created_at),
        "started_at": _timestamp(execution.started_at),
        "finished_at": _timestamp(execution.finished_at),
        "tags": list(execution.tags),
        "last_seq": execution.last_seq,
    }


def _timestamp(moment: Any) -> str | None:
    return None if moment is None else format_timestamp(moment)


def executions_for_feed() -> QuerySet[Execution]:
    """Executions with what ``feed_state`` reads, and nothing more, in one query."""
    return Execution.objects.select_related("workflow").only(*FEED_COLUMNS)


def feed_filter(raw: Any) -> tuple[FeedFilter | None, str | None]:
    """A client's filter (``{"workflow_id", "status": [...], "tag"}``, each optional,
    ``null`` as if absent) checked: ``(filter, None)``, or ``(None, what is wrong)``."""
    if raw is None:
        return FeedFilter(), None
    if not isinstance(raw, dict):
        return None, f"The filter must be an object, not {type(raw).__name__}."
    unknown = sorted(set(raw) - set(FILTER_KEYS))
    if unknown:
        return None, (
            f"Unknown filter key {unknown[0]!r}: a feed filters on workflow_id, status and tag."
        )
    try:
        return FeedFilter(
            workflow_id=_filter_workflow(raw.get("workflow_id")),
            statuses=_filter_statuses(raw.get("status")),
            tag=_filter_tag(raw.get("tag")),
        ), None
    except ValueError as exc:
        return None, str(exc)


def _filter_workflow(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return uuid.UUID(value)
    raise ValueError(
        _("workflow_id must be a workflow's id (a UUID string), not %(value)s.")
        % {"value": repr(value)}
    )


def _filter_statuses(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    valid = ", ".join(ExecutionStatus.values)
    if not isinstance(value, list) or not value:
        raise ValueError(
            _("status must be a non-empty list of statuses among %(valid)s.") % {"valid": valid}
        )
    wrong = [status for status in value if status not in ExecutionStatus.values]
    if wrong:
        raise ValueError(
            _("status %(status)s is not one of %(valid)s.")
            % {"status": repr(wrong[0]), "valid": valid}
        )
    return frozenset(value)


def _filter_tag(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return tag_check(value)
    except InvalidTags as exc:
        raise ValueError(str(exc)) from exc


def feed_read(
    user: AbstractBaseUser | AnonymousUser,
    feed_filter: FeedFilter,
    cursor: str | None = None,
    *,
    limit: int = FEED_PAGE_SIZE,
) -> FeedPage:
    """Without ``cursor``: the newest ``REALTIME_FEED_BACKLOG`` executions that
    match, newest first. With one: those changed after it that match, at most
    ``limit``, in the order they changed. Each with the cursor to read on from.

    Only the executions ``user`` may see (``executions_visible_to``). Raises
    ``FeedCursorInvalid`` for a cursor this database did not give out.
    """
    if not 1 <= limit <= FEED_PAGE_MAX:
        raise ValueError(f"limit is {limit}; read 1 to {FEED_PAGE_MAX} executions at a time.")
    after = None if cursor is None else _cursor_decode(cursor)
    # Taken before the rows are read: a cursor from after the read could pass
    # over a change it did not see.
    floor, horizon = _cursor_now()
    if after is not None:
        _cursor_check(after, horizon)
    executions = _matching(user, feed_filter)
    if after is None:
        backlog = executions.order_by("-created_at", "-id")[: settings.REALTIME_FEED_BACKLOG]
        return FeedPage([feed_state(e) for e in backlog], _Cursor(floor).encode(), more=False)
    return _changes(executions, after, floor, limit)


def feed_changes(cursor: str, *, limit: int = FEED_PAGE_SIZE) -> FeedChanges:
    """Every execution changed after ``cursor``, whoever may see it, at most
    ``limit``: one read a server makes for all its feeds, each of which keeps
    what its filter (``FeedFilter.admits``) and its user may see."""
    if not 1 <= limit <= FEED_PAGE_MAX:
        raise ValueError(f"limit is {limit}; read 1 to {FEED_PAGE_MAX} executions at a time.")
    after = _cursor_decode(cursor)
    floor, horizon = _cursor_now()
    _cursor_check(after, horizon)
    rows, resume, more = _changed_rows(executions_for_feed(), after, floor, limit)
    return FeedChanges([(e.owner_id, feed_state(e)) for e in rows], resume, more)


def cursor_floor(cursor: str) -> int:
    """The position of a cursor this database gave out, to tell the oldest of several."""
    return _cursor_decode(cursor).floor


def _changes(executions: QuerySet, after: _Cursor, floor: int, limit: int) -> FeedPage:
    """The page of changes after ``after``; ``floor``: the cursor taken now."""
    rows, resume, more = _changed_rows(executions, after, floor, limit)
    return FeedPage([feed_state(execution) for execution in rows], resume, more)


def _changed_rows(
    executions: QuerySet, after: _Cursor, floor: int, limit: int
) -> tuple[list[Execution], str, bool]:
    if after.after is None:
        changed = executions.filter(feed_mark__gte=after.floor)
        # The floor the whole read goes on from, once its pages run out.
        resume = floor
    else:
        mark, execution_id = after.after
        changed = executions.filter(
            Q(feed_mark__gt=mark) | Q(feed_mark=mark, id__gt=execution_id), feed_mark__gte=mark
        )
        resume = after.floor
    rows = list(changed.order_by("feed_mark", "id")[: limit + 1])
    page = rows[:limit]
    if len(rows) <= limit:
        return page, _Cursor(resume).encode(), False
    last = page[-1]
    return page, _Cursor(resume, (last.feed_mark, last.id)).encode(), True


def _matching(user: AbstractBaseUser | AnonymousUser, feed_filter: FeedFilter) -> QuerySet:
    executions = executions_visible_to(user).select_related("workflow").only(*FEED_COLUMNS)
    if feed_filter.workflow_id is not None:
        executions = executions.filter(workflow_id=feed_filter.workflow_id)
    if feed_filter.statuses:
        executions = executions.filter(status__in=sorted(feed_filter.statuses))
    if feed_filter.tag is not None:
        executions = executions.filter(tag_rows__tag=feed_filter.tag)
    return executions


def _cursor_now() -> tuple[int, int]:
    """``(cursor, horizon)``: the floor of what has not ended, and past which no
    mark has been given out yet (a cursor beyond it is not this database's)."""
    if connection.vendor == "postgresql":
        # One statement: both from the same snapshot.
        sql = (
            "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint "
            "FROM pg_current_snapshot() AS s"
        )
    elif connection.vendor == "sqlite":
        sql = "SELECT value + 1, value + 1 FROM executions_feed_clock WHERE id = 1"
    else:
        raise NotImplementedError(
            f"The executions feed needs PostgreSQL or SQLite, not {connection.vendor}."
        )
    with connection.cursor() as db:
        db.execute(sql)
        floor, horizon = db.fetchone()
    return floor, horizon


def _cursor_decode(cursor: Any) -> _Cursor:
    found = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    if found is None:
        raise FeedCursorInvalid(
            _(
                "This feed cursor is malformed; send back a cursor exactly as the feed gave "
                "it, or subscribe without one."
            )
        )
    kind, floor, mark, execution_id = found.groups()
    if kind != _KINDS.get(connection.vendor):
        raise FeedCursorInvalid(
            _("This feed cursor is from another kind of database; subscribe without one.")
        )
    after = None if mark is None else (int(mark), uuid.UUID(hex=execution_id))
    return _Cursor(int(floor), after)


def _cursor_check(cursor: _Cursor, horizon: int) -> None:
    """A cursor past any mark given out yet is another database's (or a forgery)."""
    ahead = cursor.floor > horizon or (cursor.after is not None and cursor.after[0] >= horizon)
    if ahead:
        raise FeedCursorInvalid(
            _(
                "This feed cursor was not given out by this database (it is ahead of it); "
                "subscribe without one."
            )
        )


@checks.register
def check_feed_backlog(**kwargs) -> list[checks.Error]:
    """A backlog the feed's first read could not send at once."""
    backlog = settings.REALTIME_FEED_BACKLOG
    if isinstance(backlog, int) and 0 <= backlog <= FEED_PAGE_MAX:
        return []
    return [
        checks.Error(
            f"REALTIME_FEED_BACKLOG is {backlog!r}; set it to the executions a feed starts "
            f"with, 0 to {FEED_PAGE_MAX} (default 50).",
            id="executions.E120",
        )
    ]
