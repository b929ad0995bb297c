"""Log lines and stream chunks of many executions, recorded in one transaction.

A runner's nodes log and stream far more often than they change state; one
transaction per line would cost each its own round trips and commit. The
engine hands these records over in batches (``executions.engine.recorder``)
and ``events_record`` writes a batch at once: it locks the batch's executions
in the order of their ids (so that batches of several runners never wait on
each other in a cycle), checks each execution's state and claim, allocates
each event's ``seq`` under that lock, and inserts every event and saves every
changed row with one statement per table. Each stored event is announced by
``eventlog.event_stored``, as a single write's is.
"""

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from psycopg.types.json import Jsonb

from executions.models import EventType, Execution, ExecutionEvent
from executions.services.eventlog import (
    deferred_writes,
    event_append,
    event_stored,
    log_line_admit,
    with_database_time,
)
from executions.states import TERMINAL_STATUSES


@dataclass(frozen=True)
class Record:
    """A log line (``eventlog.log_data``) or a stream chunk (``chunk_data``) to append
    to an execution, as the holder of ``claim_token`` (or anyone, if ``None``)."""

    execution_id: Any
    claim_token: Any
    type: str
    data: dict


class Outcome:
    """What became of a record."""

    RECORDED = "recorded"
    """Its event was appended (for a line past the log's limits: the warning that cuts it)."""
    DROPPED = "dropped"
    """Not recorded: the execution's log or streams were cut, or the node moved on."""
    ENDED = "ended"
    """Not recorded: the execution has ended, or does not exist."""
    CLAIM_LOST = "claim_lost"
    """Not recorded: the execution is no longer claimed with the record's token."""


def chunk_data(*, node_id: str, stream: str, attempt: int, data: str | list) -> dict:
    """A stream chunk as stored and sent: the coalesced text, or a list of JSON pieces."""
    return {"node_id": node_id, "stream": stream, "attempt": attempt, "data": data}


def events_record(*, records: list[Record]) -> list[str]:
    """Append each record's event in one transaction; return each one's ``Outcome``."""
    with transaction.atomic():
        ids = {record.execution_id for record in records}
        locked = Execution.objects.select_for_update().filter(id__in=ids).order_by("id")
        executions = {
            execution.id: execution
            for execution in with_database_time(
                locked.only("status", "claim_token", *EXECUTION_FIELDS)
            )
        }
        with deferred_writes() as events:
            outcomes = [_record(record, executions) for record in records]
        if events:
            events_insert(events)
            changed = {event.execution_id for event in events}
            heads_update([execution for id, execution in executions.items() if id in changed])
        for event in events:
            event_stored(event)
    return outcomes


def _record(record: Record, executions: dict) -> str:
    execution = executions.get(Execution._meta.pk.to_python(record.execution_id))
    if execution is None or execution.status in TERMINAL_STATUSES:
        return Outcome.ENDED
    token = Execution._meta.get_field("claim_token").to_python(record.claim_token)
    if token is not None and execution.claim_token != token:
        return Outcome.CLAIM_LOST
    if record.type == EventType.LOG:
        data = log_line_admit(execution, record.data)
    else:
        data = chunk_admit(execution, record.data)
    if data is None:
        return Outcome.DROPPED
    event_append(execution, record.type, data)
    return Outcome.RECORDED


def piece_size(piece: Any) -> int:
    """What a streamed piece counts against ``EXECUTIONS_MAX_STREAM_BYTES``."""
    return len(piece.encode()) if isinstance(piece, str) else len(json.dumps(piece).encode())


def chunk_admit(execution: Execution, data: dict) -> dict | None:
    """Count a chunk against the locked execution's stream limit; return what to
    append (the chunk, cut at the limit with a marker), or ``None`` once the
    execution's streams are cut."""
    if execution.stream_cut:
        return None
    room = settings.EXECUTIONS_MAX_STREAM_BYTES - execution.stream_bytes
    text = isinstance(data["data"], str)
    pieces = [data["data"]] if text else data["data"]
    kept, size = _within(pieces, room)
    execution.stream_bytes += size
    value = "".join(kept) if text else kept
    if value == data["data"]:
        return data
    execution.stream_cut = True
    return {**data, "data": value, "stream_truncated": True}


def _within(pieces: list, room: int) -> tuple[list, int]:
    """The pieces that fit in ``room`` bytes (a text cut to fit), and their size."""
    kept, size = [], 0
    for piece in pieces:
        cost = piece_size(piece)
        if size + cost > room:
            if isinstance(piece, str):
                cut = piece.encode()[: max(0, room - size)].decode(errors="ignore")
                kept.append(cut)
                size += len(cut.encode())
            break
        kept.append(piece)
        size += cost
    return kept, size


def _prepared(row, names: list[str]) -> list:
    return [
        field.get_db_prep_save(getattr(row, field.attname), connection)
        for field in (row._meta.get_field(name) for name in names)
    ]


def _quoted(model, names: list[str]) -> list[str]:
    return [connection.ops.quote_name(model._meta.get_field(name).column) for name in names]


EVENT_FIELDS = ["execution", "seq", "type", "data", "created_at"]


def events_insert(events: list[ExecutionEvent]) -> None:
    """Insert ``events`` with one statement (the ORM's ``bulk_create`` costs a
    millisecond of Python an event); each gets its id. On PostgreSQL the values
    go as one array a column, so the statement is the same for every batch."""
    table = connection.ops.quote_name(ExecutionEvent._meta.db_table)
    columns = ", ".join(_quoted(ExecutionEvent, EVENT_FIELDS))
    key = connection.ops.quote_name(ExecutionEvent._meta.pk.column)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{kind}[]" for kind in _types(ExecutionEvent, EVENT_FIELDS))
            # psycopg adapts these values as they are, without the fields' conversions.
            columns_values = [
                [e.execution_id for e in events],
                [e.seq for e in events],
                [e.type for e in events],
                [Jsonb(e.data) for e in events],
                [e.created_at for e in events],
            ]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) RETURNING {key}",
                columns_values,
            )
            ids = [id for (id,) in cursor.fetchall()]
        else:
            rows = [_prepared(event, EVENT_FIELDS) for event in events]
            ids = []
            step = max(1, connection.features.max_query_params // len(EVENT_FIELDS))
            for start in range(0, len(rows), step):
                part = rows[start : start + step]
                row = f"({', '.join(['%s'] * len(EVENT_FIELDS))})"
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(part))}"
                    f" RETURNING {key}",
                    [value for values in part for value in values],
                )
                ids += [id for (id,) in cursor.fetchall()]
    for event, id in zip(events, ids, strict=True):
        event.id = id


def _types(model, names: list[str]) -> list[str]:
    return [model._meta.get_field(name).db_type(connection) for name in names]


def heads_update(executions: list[Execution]) -> None:
    """Save what the records moved on each execution's row: one statement on
    PostgreSQL, one prepared statement a row on SQLite (in process, no round trips)."""
    table = connection.ops.quote_name(Execution._meta.db_table)
    key = connection.ops.quote_name(Execution._meta.pk.column)
    columns = _quoted(Execution, EXECUTION_FIELDS)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            assignments = ", ".join(f"{column} = %s" for column in columns)
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {key} = %s",
                [[*_prepared(e, EXECUTION_FIELDS), *_prepared(e, ["id"])] for e in executions],
            )
            return
        names = ["id", *EXECUTION_FIELDS]
        arrays = ", ".join(f"%s::{kind}[]" for kind in _types(Execution, names))
        assignments = ", ".join(f"{column} = v.{column}" for column in columns)
        cursor.execute(
            f"UPDATE {table} SET {assignments} FROM unnest({arrays})"
            f" AS v ({', '.join(_quoted(Execution, names))}) WHERE {table}.{key} = v.{key}",
            [
                list(column)
                for column in zip(*(_prepared(e, names) for e in executions), strict=True)
            ],
        )


# What a record moves on its execution's row.
EXECUTION_FIELDS = [
    "last_seq",
    "last_event_at",
    "log_lines",
    "log_bytes",
    "log_cut",
    "stream_bytes",
    "stream_cut",
]
