"""The one place that shapes the messages sent to WebSocket clients.

Every stored event becomes ``{"type", "execution_id", ...its data, "seq",
"timestamp"}``. A ``status`` message therefore carries exactly the seed's
fields plus ``seq`` and ``timestamp``, which old clients ignore, and, when
its result was too long to send whole, ``result_truncated`` and
``result_size`` (``executions.services.eventlog.event_result``); any event
whose text was too long, ``<field>_truncated`` and ``<field>_size``
(``executions.services.eventlog.event_text``).
"""

import json

from django.conf import settings

from executions.clock import format_timestamp
from executions.models import EventType, Execution, ExecutionEvent
from executions.services.eventlog import event_result, event_text, status_data

# The text fields of each type of event that ``event_text`` cuts.
TEXT_FIELDS = {
    EventType.STATUS: ("error", "message"),
    EventType.NODE: ("error",),
    EventType.LOG: ("message",),
}


def event_message(event: ExecutionEvent) -> dict:
    data = event.data
    if event.type == EventType.STATUS and _uncut_result(data):
        # Stored before results were cut in the log; sent as they are now.
        data = {**data, **event_result(data["result"])}
    for name in TEXT_FIELDS.get(event.type, ()):
        if _uncut_text(data, name):
            # Stored before texts were cut in the log; sent as they are now.
            data = {**data, **event_text(name, data[name])}
    return {
        "type": event.type,
        "execution_id": str(event.execution_id),
        **data,
        "seq": event.seq,
        "timestamp": format_timestamp(event.created_at),
    }


def snapshot_message(execution: Execution) -> dict:
    """The execution's current state, "as of" its newest event."""
    return {
        "type": EventType.STATUS.value,
        "execution_id": str(execution.id),
        **status_data(execution),
        "seq": execution.last_seq,
        "timestamp": format_timestamp(execution.last_event_at or execution.created_at),
    }


def _uncut_result(data: dict) -> bool:
    return data.get("result") is not None and "result_truncated" not in data


def _uncut_text(data: dict, name: str) -> bool:
    text = data.get(name)
    return (
        isinstance(text, str)
        and len(text) > settings.EXECUTIONS_EVENT_TEXT_LIMIT
        and f"{name}_truncated" not in data
    )


def error_message(text: str) -> dict:
    """An ``error`` saying ``text`` (a lazy translation is put in the active language)."""
    return {"type": "error", "message": str(text)}


def encode(message: dict) -> str:
    """A message as the text of a frame, as ``send_json`` would send it."""
    return json.dumps(message)


def pong_message() -> dict:
    return {"type": "pong"}


def is_terminal(message: dict) -> bool:
    from executions.states import TERMINAL_STATUSES

    return message["type"] == EventType.STATUS and message["status"] in TERMINAL_STATUSES
