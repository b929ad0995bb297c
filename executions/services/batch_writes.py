"""The statements that save a batch of records (``records.events_record``).

The ORM's ``bulk_create`` and ``bulk_update`` cost about a millisecond of
Python a row (``bulk_update`` builds a ``CASE`` per field and row). Here a
batch's events are one ``INSERT`` and its executions' heads one ``UPDATE``.
On PostgreSQL each column's values go as one array, bound on the server in
the binary format, so the statement's text is the same for every batch and
no value is quoted in Python. On SQLite, which runs in the process, the
statements are plain multi-row ones.
"""

import psycopg
from django.db import connection
from psycopg.types.json import Jsonb

from executions.models import Execution, ExecutionEvent

EVENT_FIELDS = ["execution", "seq", "type", "data", "created_at"]
# What a record moves on its execution's row.
HEAD_FIELDS = [
    "last_seq",
    "last_event_at",
    "log_lines",
    "log_bytes",
    "log_cut",
    "stream_bytes",
    "stream_cut",
]


def events_insert(events: list[ExecutionEvent]) -> None:
    """Insert ``events`` in one statement (SQLite: as many as its parameters
    allow at once); each gets its id."""
    table, columns = _table(ExecutionEvent), ", ".join(_columns(ExecutionEvent, EVENT_FIELDS))
    key = connection.ops.quote_name(ExecutionEvent._meta.pk.column)
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%b::{kind}[]" for kind in _types(ExecutionEvent, EVENT_FIELDS))
        values = [
            [e.execution_id for e in events],
            [e.seq for e in events],
            [e.type for e in events],
            [Jsonb(e.data) for e in events],
            [e.created_at for e in events],
        ]
        with _binary_cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) RETURNING {key}",
                values,
            )
            ids = [id for (id,) in cursor.fetchall()]
    else:
        ids = []
        rows = [_prepared(event, EVENT_FIELDS) for event in events]
        step = max(1, connection.features.max_query_params // len(EVENT_FIELDS))
        row = f"({', '.join(['%s'] * len(EVENT_FIELDS))})"
        with connection.cursor() as cursor:
            for start in range(0, len(rows), step):
                part = rows[start : start + step]
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(part))}"
                    f" RETURNING {key}",
                    [value for values in part for value in values],
                )
                ids += [id for (id,) in cursor.fetchall()]
    for event, id in zip(events, ids, strict=True):
        event.id = id


def heads_update(executions: list[Execution]) -> None:
    """Save what the records moved on each execution's row (``HEAD_FIELDS``)."""
    table, key = _table(Execution), connection.ops.quote_name(Execution._meta.pk.column)
    columns = _columns(Execution, HEAD_FIELDS)
    if connection.vendor == "postgresql":
        names = ["id", *HEAD_FIELDS]
        arrays = ", ".join(f"%b::{kind}[]" for kind in _types(Execution, names))
        assignments = ", ".join(f"{column} = v.{column}" for column in columns)
        with _binary_cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM unnest({arrays})"
                f" AS v ({', '.join(_columns(Execution, names))}) WHERE {table}.{key} = v.{key}",
                [[getattr(e, name) for e in executions] for name in names],
            )
        return
    assignments = ", ".join(f"{column} = %s" for column in columns)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {assignments} WHERE {key} = %s",
            [[*_prepared(e, HEAD_FIELDS), *_prepared(e, ["id"])] for e in executions],
        )


def _binary_cursor() -> psycopg.Cursor:
    """A cursor of the open connection (the caller's transaction) that binds its
    parameters on the server, where Django's cursors bind them in Python."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _columns(model, names: list[str]) -> list[str]:
    return [connection.ops.quote_name(model._meta.get_field(name).column) for name in names]


def _types(model, names: list[str]) -> list[str]:
    return [model._meta.get_field(name).db_type(connection) for name in names]


def _prepared(row, names: list[str]) -> list:
    return [
        field.get_db_prep_save(getattr(row, field.attname), connection)
        for field in (row._meta.get_field(name) for name in names)
    ]
