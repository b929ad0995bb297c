"""The one clock of leases, dispatch times, ticket expiry, event times and
durations: the database's.

Runners and servers run on machines whose clocks differ, and a time written
by one process is judged by another (a lease, a ticket) or subtracted from
one written by another (a duration). Both ends only agree when both come
from the same clock, so every such time is the database's ``Now()``
(PostgreSQL's ``statement_timestamp()``, SQLite's clock): as an expression in
the statement that writes or compares it, or read once per transaction with
the row a service locks (``locked_now``).
"""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models.functions import Now
from django.db.models.sql import Query

# The attribute that holds the database's time on a row read with ``Now()``
# annotated (see ``executions.services.eventlog.locked``).
LOCKED_NOW = "db_now"
# And this process's monotonic clock at that read, to tell how much later it is.
READ_AT = "db_now_read_at"


def database_now(using: str = DEFAULT_DB_ALIAS) -> datetime:
    """The database's current time, read in one statement."""
    query = Query(None)
    query.add_annotation(Now(), "now", select=True)
    (now,) = next(query.get_compiler(using=using).results_iter())
    return now


def locked_now(instance: Any) -> datetime:
    """The database's time of this transaction: read with the row's lock, or
    (for a row read another way, such as one just created) read now, once."""
    now = getattr(instance, LOCKED_NOW, None)
    if now is None:
        now = database_now()
        setattr(instance, LOCKED_NOW, now)
        setattr(instance, READ_AT, time.monotonic())
    return now


def locked_now_mark(instance: Any) -> Any:
    """Note when the row that carries the database's time was read; returns it."""
    setattr(instance, READ_AT, time.monotonic())
    return instance


def database_time(instance: Any) -> datetime:
    """The database's time now, without a query: the time read with the row plus
    what has elapsed here since (an event is dated as it is appended, not as the
    transaction that appends it began)."""
    now = locked_now(instance)
    elapsed = time.monotonic() - getattr(instance, READ_AT, time.monotonic())
    return now + timedelta(seconds=max(0.0, elapsed))


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, e.g. ``2026-11-28T10:00:00.123456Z``: every
    time sent to clients is written so."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
