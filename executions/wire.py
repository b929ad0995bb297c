"""The one place that shapes an execution's events, as stored and as sent.

Each type of event has its data here (``status_data``, ``node_data``,
``log_data``, ``chunk_data``); every stored event is sent in one envelope,
``{"type", "execution_id", ...its data, "seq", "timestamp"}``
(``event_message``), and a subscription without ``last_seq`` starts from the
execution's state in the same shape (``snapshot_message``). A ``status``
message therefore carries exactly the seed's fields (``state_data``) plus
``seq`` and ``timestamp``, which old clients ignore, and, when its result was
too long to send whole, ``result_truncated`` and ``result_size``
(``event_result``); any event whose text was too long, ``<field>_truncated``
and ``<field>_size`` (``event_text``). docs/protocol.md describes them for
clients; the services store them, the push side (``realtime``) sends them.
"""

import json
from typing import Any

from django.conf import settings

from executions.clock import format_timestamp
from executions.models import EventType, Execution, ExecutionEvent, NodeRun, NodeStatus
from executions.states import NODE_FINISHED_STATUSES, TERMINAL_STATUSES

# The text fields of each type of event that ``event_text`` cuts.
TEXT_FIELDS = {
    EventType.STATUS: ("error", "message"),
    EventType.NODE: ("error",),
    EventType.LOG: ("message",),
}


def state_data(execution: Execution) -> dict:
    """The seed's status fields, as they appear in a ``status`` message."""
    return {
        "status": execution.status,
        "progress": execution.progress,
        "message": execution.message,
        "result": execution.result,
        "error": execution.error,
        "execution_time": execution.execution_time,
    }


def status_data(execution: Execution) -> dict:
    """The execution's state as a ``status`` event carries it: ``event_result``'s
    result, and its ``error`` and ``message`` as ``event_text`` cuts them."""
    return {
        **state_data(execution),
        **event_result(execution.result),
        **event_text("error", execution.error),
        **event_text("message", execution.message),
    }


def node_data(run: NodeRun, *, finished_now: bool) -> dict:
    """A node's change of status (``run.status``) as a ``node`` event carries it; its
    ``duration`` when the attempt ended with this change (``finished_now``)."""
    data: dict[str, Any] = {
        "node_id": run.node_id,
        "node_type": run.node_type,
        "status": run.status,
        "attempt": run.attempts,
    }
    if run.status == NodeStatus.COMPLETED:
        data.update(event_output(run.output))
    if run.status == NodeStatus.FAILED:
        data.update(event_text("error", run.error))
    if run.status in NODE_FINISHED_STATUSES and run.duration is not None and finished_now:
        data["duration"] = run.duration
    return data


def log_data(node_id: str | None, level: str, message: str) -> dict:
    """A log line as stored and sent: its message cut by ``event_text``."""
    return {"node_id": node_id, "level": level, **event_text("message", message)}


def chunk_data(*, node_id: str, stream: str, attempt: int, data: str | list) -> dict:
    """A stream chunk as stored and sent: the coalesced text, or a list of JSON pieces."""
    return {"node_id": node_id, "stream": stream, "attempt": attempt, "data": data}


def event_output(output: Any) -> dict:
    """The output as sent in a node event: cut to the configured size, with a marker."""
    text = json.dumps(output)
    limit = settings.EXECUTIONS_EVENT_OUTPUT_LIMIT
    if len(text) <= limit:
        return {"output": output}
    return {"output": text[:limit] + "…", "output_truncated": True, "output_size": len(text)}


def event_result(result: Any) -> dict:
    """The result as a status event stores and sends it: cut to the configured
    size, with a marker (the full result stays on the execution)."""
    if result is None:
        return {"result": None}
    text = json.dumps(result)
    limit = settings.EXECUTIONS_EVENT_RESULT_LIMIT
    if len(text) <= limit:
        return {"result": result}
    return {"result": text[:limit] + "…", "result_truncated": True, "result_size": len(text)}


def event_text(name: str, text: str | None) -> dict:
    """A text field as an event stores and sends it: cut to the configured
    length, with a marker (``"<name>_truncated"``) and its full length."""
    limit = settings.EXECUTIONS_EVENT_TEXT_LIMIT
    if text is None or len(text) <= limit:
        return {name: text}
    return {name: text[:limit] + "…", f"{name}_truncated": True, f"{name}_size": len(text)}


def event_message(event: ExecutionEvent) -> dict:
    """A stored event as sent (socket, event stream, the events endpoint)."""
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


def is_terminal(message: dict) -> bool:
    """Whether a sent message (``event_message``, ``snapshot_message``) is the execution's last."""
    return message["type"] == EventType.STATUS and message["status"] in TERMINAL_STATUSES


def _uncut_result(data: dict) -> bool:
    return data.get("result") is not None and "result_truncated" not in data


def _uncut_text(data: dict, name: str) -> bool:
    text = data.get(name)
    return (
        isinstance(text, str)
        and len(text) > settings.EXECUTIONS_EVENT_TEXT_LIMIT
        and f"{name}_truncated" not in data
    )
