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

from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models.functions import Now
from django.db.models.sql import Query

# The attribute that holds the database's time on a row read with ``Now()``
# annotated (see ``executions.services.eventlog.locked``).
LOCKED_NOW = "db_now"


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
    return now
