"""What a log line is about, and ``LOG_FORMAT=json``.

``request_id``, ``execution_id`` and ``node_id`` are context variables: set for
a request by ``project.requestid.RequestIdMiddleware``, for an execution's run
and each of its nodes by the engine (``bind``), so every line logged meanwhile,
in that thread or task and the tasks it starts, carries them. ``worker`` names
the process (``set_worker``). ``JsonFormatter`` writes one JSON object a line:
time, level, logger, message, those ids where set, and the traceback.
"""

import contextvars
import json
import logging
import time
from contextlib import contextmanager
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
execution_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "execution_id", default=None
)
node_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("node_id", default=None)
CONTEXT = {"request_id": request_id, "execution_id": execution_id, "node_id": node_id}
_worker: str | None = None


def set_worker(name: str) -> None:
    """Name this process's lines (``worker``): a worker's ``host:pid``."""
    global _worker
    _worker = name


def bind(**values: Any) -> None:
    """Set the ids of what the current task (or thread) works on, for its lines."""
    for name, value in values.items():
        CONTEXT[name].set(None if value is None else str(value))


@contextmanager
def bound(**values: Any):
    """``bind`` for the duration of a block."""
    tokens = [
        (CONTEXT[n], CONTEXT[n].set(None if v is None else str(v))) for n, v in values.items()
    ]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``LOG_FORMAT=json``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, variable in CONTEXT.items():
            value = getattr(record, name, None) or variable.get()
            if value:
                entry[name] = value
        if _worker:
            entry["worker"] = _worker
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["traceback"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
