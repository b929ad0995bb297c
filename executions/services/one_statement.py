"""A change made on rows read without a lock, written in one statement (PostgreSQL).

A change under the row lock costs a round trip for each read and write and
one for the commit, each of them waiting for a core on a loaded machine. For
a change that its runner alone makes, such as the end of a run, the service
reads the rows, makes the change on them as the locked path would
(``eventlog.deferred_writes``), and ``rows_write`` writes every collected row
in one statement, which PostgreSQL commits by itself. The statement writes
only if the execution's log has not moved since the read (its ``last_seq``)
and, when a claim is given, the execution is still claimed with it: the
execution's row lock, taken by the statement's ``UPDATE``, then allocates the
same ``seq`` values the locked path would have. Otherwise it writes nothing,
and the caller takes the locked path.
"""

from typing import Any

from django.db import connection
from django.db.models import Model

from executions.models import Execution, ExecutionEvent, NodeRun
from executions.services.eventlog import event_stored

Values = dict[str, Any]


def row_values(row: Model) -> Values:
    """The row's stored fields as read (not its deferred ones): what ``rows_write``
    compares with to tell which fields a change set."""
    deferred = row.get_deferred_fields()
    return {
        field.attname: getattr(row, field.attname)
        for field in row._meta.concrete_fields
        if field.attname not in deferred and not field.primary_key
    }


def rows_write(
    execution: Execution,
    *,
    read: dict[Any, Values],
    writes: list,
    claim_token: Any = None,
) -> bool:
    """Write ``writes`` (``deferred_writes``' rows: the execution, its node runs,
    new events) in one statement if the execution's ``last_seq`` is still
    ``read[execution.pk]``'s (and its claim ``claim_token``); push the events as
    ``save()`` would. ``read``: each row's ``row_values`` by primary key, before
    the change. False, having written nothing, when the execution moved on."""
    events = [row for row in writes if isinstance(row, ExecutionEvent)]
    runs = [row for row in writes if isinstance(row, NodeRun)]
    guard = read[execution.pk]["last_seq"]
    parts, params = [], []
    sql, values = _update(execution, read[execution.pk])
    claim = "" if claim_token is None else f" AND {_column(Execution, 'claim_token')} = %s"
    parts.append(f"written AS ({sql} AND {_column(Execution, 'last_seq')} = %s{claim} RETURNING 1)")
    params += [*values, guard] + ([] if claim_token is None else [claim_token])
    for index, run in enumerate(runs):
        sql, values = _update(run, read[run.pk])
        parts.append(f"run_{index} AS ({sql} AND EXISTS (SELECT FROM written) RETURNING 1)")
        params += values
    insert, values = _insert(events)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} {insert}", [*params, *values])
        ids = dict(cursor.fetchall())
    if not ids:
        return False
    for event in events:
        event.id = ids[event.seq]
        event_stored(event)
    return True


def _update(row: Model, before: Values) -> tuple[str, list]:
    """``UPDATE`` of the fields of ``row`` that differ from ``before``, ``WHERE`` its key."""
    changed = [
        field
        for field in row._meta.concrete_fields
        if field.attname in before and getattr(row, field.attname) != before[field.attname]
    ]
    # A change always moves something (the log's head at least); a no-op
    # assignment keeps the statement valid for a row it did not touch.
    key = row._meta.pk
    assignments = [f"{_column(row, field.attname)} = %s" for field in changed] or [
        f"{_column(row, key.attname)} = {_column(row, key.attname)}"
    ]
    values = [field.get_db_prep_save(getattr(row, field.attname), connection) for field in changed]
    table = connection.ops.quote_name(row._meta.db_table)
    sql = f"UPDATE {table} SET {', '.join(assignments)} WHERE {_column(row, key.attname)} = %s"
    return sql, [*values, key.get_db_prep_value(row.pk, connection)]


def _insert(events: list[ExecutionEvent]) -> tuple[str, list]:
    names = ["execution_id", "seq", "type", "data", "created_at"]
    fields = [ExecutionEvent._meta.get_field(name) for name in names]
    casts = ["uuid", "integer", "varchar", "jsonb", "timestamptz"]
    rows, values = [], []
    for event in events:
        rows.append("(" + ", ".join(f"%s::{cast}" for cast in casts) + ")")
        values += [
            field.get_db_prep_save(getattr(event, field.attname), connection) for field in fields
        ]
    table = connection.ops.quote_name(ExecutionEvent._meta.db_table)
    columns = ", ".join(_column(ExecutionEvent, field.attname) for field in fields)
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT * FROM (VALUES {', '.join(rows)}) AS event "
        f"WHERE EXISTS (SELECT FROM written) "
        f"RETURNING {_column(ExecutionEvent, 'seq')}, {_column(ExecutionEvent, 'id')}"
    )
    return sql, values


def _column(model, attname: str) -> str:
    field = next(f for f in model._meta.concrete_fields if f.attname == attname)
    return connection.ops.quote_name(field.column)
