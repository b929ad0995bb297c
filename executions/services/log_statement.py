"""A log line recorded in one statement, on PostgreSQL.

A log line changes nothing of its execution but the log's head and its
counts, so it needs neither a locked read nor a transaction of its own: one
statement moves the head (the ``UPDATE`` takes the row lock, allocates the
next ``seq`` and counts the line against ``EXECUTIONS_MAX_LOG_LINES`` and
``EXECUTIONS_MAX_LOG_BYTES``) and inserts the event with it. Outside a
transaction the statement commits by itself, in one round trip instead of
five; inside one, it joins it. The event's ``post_save`` signal is sent as
``save()`` would send it, so the push after commit is the same as for every
other event.
"""

from functools import cache

from django.conf import settings
from django.db import connection

from executions.models import EventType, Execution, ExecutionEvent
from executions.services.eventlog import event_stored, log_cut_data, log_size
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

    # SET reads the row as it was; RETURNING, as it is now. A line past either
    # limit moves the head as any line does, but records the warning instead
    # and sets ``log_cut``: later lines match no row.
    return f"""
        WITH head AS (
            UPDATE {_table(Execution)}
            SET {e("last_seq")} = {e("last_seq")} + 1,
                {e("last_event_at")} = GREATEST({e("last_event_at")}, STATEMENT_TIMESTAMP()),
                {e("log_lines")} = {e("log_lines")} + 1,
                {e("log_bytes")} = {e("log_bytes")} + %(size)s,
                {e("log_cut")} = NOT ({e("log_lines")} < %(max_lines)s
                                      AND {e("log_bytes")} + %(size)s <= %(max_bytes)s)
            WHERE {e("id")} = %(execution_id)s
              AND {e("status")} <> ALL(%(terminal)s)
              AND (%(claim_token)s::uuid IS NULL OR {e("claim_token")} = %(claim_token)s::uuid)
              AND NOT {e("log_cut")}
            RETURNING {e("id")} AS id, {e("last_seq")} AS seq, {e("last_event_at")} AS created_at,
                      {e("log_cut")} AS cut, {e("log_lines")} > %(max_lines)s AS over_lines
        )
        INSERT INTO {_table(ExecutionEvent)}
            ({v("execution")}, {v("seq")}, {v("type")}, {v("data")}, {v("created_at")})
        SELECT id, seq, %(type)s,
               CASE WHEN NOT cut THEN %(data)s WHEN over_lines THEN %(lines_cut)s
                    ELSE %(bytes_cut)s END,
               created_at
        FROM head
        RETURNING {v("id")}, {v("execution")}, {v("seq")}, {v("created_at")},
                  (SELECT cut FROM head), (SELECT over_lines FROM head)
    """


def log_line_append(*, execution_id, claim_token, data: dict) -> bool | None:
    """Append a ``log`` event to an execution that has not ended (and is still
    claimed with ``claim_token``, when it is given) and whose log is not cut,
    and push it after commit; ``True`` if it was the line, ``False`` if it was
    the warning that cuts the log (``eventlog.log_line_admit``).

    ``data`` is ``eventlog.log_data``'s: its message is already cut to
    ``EXECUTIONS_EVENT_TEXT_LIMIT``, and counts as cut.

    Returns ``None``, having written nothing, when no such execution exists:
    the caller's locked path then tells which condition failed.
    """
    field = ExecutionEvent._meta.get_field("data")
    cuts = {over: log_cut_data(over_lines=over) for over in (True, False)}
    with connection.cursor() as cursor:
        # Dated by the database's clock, as the statement that records it starts.
        params = {
            "execution_id": execution_id,
            "terminal": sorted(TERMINAL_STATUSES),
            "claim_token": claim_token,
            "size": log_size(data["message"]),
            "max_lines": settings.EXECUTIONS_MAX_LOG_LINES,
            "max_bytes": settings.EXECUTIONS_MAX_LOG_BYTES,
            "type": EventType.LOG.value,
            "data": field.get_db_prep_value(data, connection),
            "lines_cut": field.get_db_prep_value(cuts[True], connection),
            "bytes_cut": field.get_db_prep_value(cuts[False], connection),
        }
        cursor.execute(_statement(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    event_id, execution_id, seq, created_at, cut, over_lines = row
    event = ExecutionEvent(
        id=event_id,
        execution_id=execution_id,
        seq=seq,
        type=EventType.LOG,
        data=cuts[over_lines] if cut else data,
        created_at=created_at,
    )
    event_stored(event)
    return not cut
