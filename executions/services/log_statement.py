"""A log line recorded in one statement (PostgreSQL) or two (SQLite).

A log line changes nothing of its execution but the log's head and its
counts, so it needs no locked read: an ``UPDATE`` moves the head (taking the
row lock, allocating the next ``seq`` and counting the line against
``EXECUTIONS_MAX_LOG_LINES`` and ``EXECUTIONS_MAX_LOG_BYTES``) and the event
is inserted with what it returns. On PostgreSQL both are one statement that,
outside a transaction, commits by itself: one round trip instead of five. On
SQLite, which has no data-modifying ``WITH``, they are two statements in one
transaction, without the ORM's model instances and queries around them. The
event is announced as every stored event is (``eventlog.event_stored``), so
the push after commit is the same.
"""

import json
from datetime import UTC, datetime
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

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


@cache
def _sqlite_statements() -> tuple[str, str]:
    def e(name: str) -> str:
        return _column(Execution, name)

    def v(name: str) -> str:
        return _column(ExecutionEvent, name)

    # Django's Now() on SQLite, in milliseconds. Stored times are ISO text,
    # which compares in time order; MAX keeps the log's times from going back.
    now = "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')"
    head = f"""
        UPDATE {_table(Execution)}
        SET {e("last_seq")} = {e("last_seq")} + 1,
            {e("last_event_at")} = MAX(COALESCE({e("last_event_at")}, ''), {now}),
            {e("log_lines")} = {e("log_lines")} + 1,
            {e("log_bytes")} = {e("log_bytes")} + %(size)s,
            {e("log_cut")} = NOT ({e("log_lines")} < %(max_lines)s
                                  AND {e("log_bytes")} + %(size)s <= %(max_bytes)s)
        WHERE {e("id")} = %(execution_id)s
          AND {e("status")} NOT IN (SELECT value FROM json_each(%(terminal)s))
          AND (%(claim_token)s IS NULL OR {e("claim_token")} = %(claim_token)s)
          AND NOT {e("log_cut")}
        RETURNING {e("last_seq")}, {e("last_event_at")}, {e("log_cut")},
                  {e("log_lines")} > %(max_lines)s
    """
    event = f"""
        INSERT INTO {_table(ExecutionEvent)}
            ({v("execution")}, {v("seq")}, {v("type")}, {v("data")}, {v("created_at")})
        VALUES (%(execution_id)s, %(seq)s, %(type)s, %(data)s, %(created_at)s)
        RETURNING {v("id")}
    """
    return head, event


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
    if connection.vendor == "sqlite":
        return _sqlite_log_line_append(execution_id, claim_token, data)
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


def _sqlite_log_line_append(execution_id, claim_token, data: dict) -> bool | None:
    head, insert = _sqlite_statements()
    key = Execution._meta.get_field("id")
    params = {
        "execution_id": key.get_db_prep_value(execution_id, connection),
        "terminal": json.dumps(sorted(TERMINAL_STATUSES)),
        "claim_token": key.get_db_prep_value(claim_token, connection),
        "size": log_size(data["message"]),
        "max_lines": settings.EXECUTIONS_MAX_LOG_LINES,
        "max_bytes": settings.EXECUTIONS_MAX_LOG_BYTES,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(head, params)
        row = cursor.fetchone()
        if row is None:
            return None
        seq, created_at, cut, over_lines = row
        recorded = log_cut_data(over_lines=bool(over_lines)) if cut else data
        field = ExecutionEvent._meta.get_field("data")
        params.update(
            seq=seq,
            type=EventType.LOG.value,
            data=field.get_db_prep_value(recorded, connection),
            created_at=created_at,
        )
        cursor.execute(insert, params)
        (event_id,) = cursor.fetchone()
        event = ExecutionEvent(
            id=event_id,
            execution_id=execution_id,
            seq=seq,
            type=EventType.LOG,
            data=recorded,
            created_at=_aware(created_at),
        )
        event_stored(event)
    return not cut


def _aware(moment) -> datetime:
    """A time SQLite returned (text, or naive when its column type is declared) in UTC."""
    if isinstance(moment, str):
        moment = parse_datetime(moment)
    return moment.replace(tzinfo=UTC)
