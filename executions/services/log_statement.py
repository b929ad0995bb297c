"""A log line recorded in one statement, on PostgreSQL.

A log line changes nothing of its execution but the log's head, so it needs
neither a locked read nor a transaction of its own: one statement moves the
head (the ``UPDATE`` takes the row lock and allocates the next ``seq``) and
inserts the event with it. Outside a transaction the statement commits by
itself, in one round trip instead of five; inside one, it joins it. The
event's ``post_save`` signal is sent as ``save()`` would send it, so the push
after commit is the same as for every other event.
"""

from functools import cache

from django.db import connection
from django.db.models.signals import post_save

from executions.models import EventType, Execution, ExecutionEvent
from executions.states import TERMINAL_STATUSES


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


@cache
def _statement() -> str:
    def e(name: str) -> str:
        return _column(Execution, name)

    def v(name: str) -> str:
        return _column(ExecutionEvent, name)

    return f"""
        WITH head AS (
            UPDATE {_table(Execution)}
            SET {e("last_seq")} = {e("last_seq")} + 1,
                {e("last_event_at")} = GREATEST({e("last_event_at")}, STATEMENT_TIMESTAMP())
            WHERE {e("id")} = %(execution_id)s
              AND {e("status")} <> ALL(%(terminal)s)
              AND (%(claim_token)s::uuid IS NULL OR {e("claim_token")} = %(claim_token)s::uuid)
            RETURNING {e("id")} AS id, {e("last_seq")} AS seq, {e("last_event_at")} AS created_at
        )
        INSERT INTO {_table(ExecutionEvent)}
            ({v("execution")}, {v("seq")}, {v("type")}, {v("data")}, {v("created_at")})
        SELECT id, seq, %(type)s, %(data)s, created_at FROM head
        RETURNING {v("id")}, {v("execution")}, {v("seq")}, {v("created_at")}
    """


def log_line_append(*, execution_id, claim_token, data: dict) -> ExecutionEvent | None:
    """Append a ``log`` event to an execution that has not ended (and is still
    claimed with ``claim_token``, when it is given) and push it after commit.

    Returns ``None``, having written nothing, when no such execution exists:
    the caller's locked path then tells which condition failed.
    """
    stored = ExecutionEvent._meta.get_field("data").get_db_prep_value(data, connection)
    with connection.cursor() as cursor:
        # Dated by the database's clock, as the statement that records it starts.
        params = {
            "execution_id": execution_id,
            "terminal": sorted(TERMINAL_STATUSES),
            "claim_token": claim_token,
            "type": EventType.LOG.value,
            "data": stored,
        }
        cursor.execute(_statement(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    event_id, execution_id, seq, created_at = row
    event = ExecutionEvent(
        id=event_id,
        execution_id=execution_id,
        seq=seq,
        type=EventType.LOG,
        data=data,
        created_at=created_at,
    )
    _saved(event)
    return event


def _saved(event: ExecutionEvent) -> None:
    """Mark ``event`` as stored and send ``post_save`` as ``save()`` would."""
    event._state.adding = False
    event._state.db = connection.alias
    post_save.send(
        sender=ExecutionEvent,
        instance=event,
        created=True,
        update_fields=None,
        raw=False,
        using=connection.alias,
    )
