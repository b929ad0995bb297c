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
from django.db import transaction

from executions.models import EventType, Execution
from executions.services.batch_writes import HEAD_FIELDS, events_insert, heads_update
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
    """A log line or a stream chunk (``wire.log_data``, ``wire.chunk_data``) to append
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


def events_record(*, records: list[Record]) -> list[str]:
    """Append each record's event in one transaction; return each one's ``Outcome``."""
    with transaction.atomic():
        ids = {record.execution_id for record in records}
        locked = Execution.objects.select_for_update().filter(id__in=ids).order_by("id")
        executions = {
            execution.id: execution
            for execution in with_database_time(locked.only("status", "claim_token", *HEAD_FIELDS))
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
