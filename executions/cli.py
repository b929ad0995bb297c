"""The terminal client behind ``manage.py run`` and ``manage.py watch``.

It speaks to a running service the way any client does: REST to start an
execution, and the Python client (``clients/python``, ``workflow_push``) to
follow it; the screen is that client's (``workflow_push.screen``).
"""

import json
import threading
import urllib.error
import urllib.request
from typing import TextIO

from websockets.exceptions import ConnectionClosed
from workflow_push import Client, WorkflowPushError
from workflow_push.screen import (
    Screen,
    chunk_line,
    node_line,
    outcome_lines,
    printable,
    progress_line,
    render,
    show_stream,
)

__all__ = [
    "ClientError",
    "Screen",
    "api_request",
    "check_completed",
    "chunk_line",
    "follow",
    "keep_alive",
    "node_line",
    "outcome_lines",
    "printable",
    "progress_line",
    "render",
    "whole_result",
]

# The server closes sockets that send nothing for REALTIME_IDLE_TIMEOUT (120 s).
PING_SECONDS = 30


class ClientError(Exception):
    """The service could not be reached or refused the request; the message says why."""


def api_request(base_url: str, token: str, method: str, path: str, body=None) -> dict:
    request = urllib.request.Request(
        base_url.rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        body = printable(exc.read().decode(errors="replace"))
        raise ClientError(f"{method} {path} -> {exc.code}: {body}") from exc
    except OSError as exc:
        raise ClientError(f"Could not reach {base_url}: {exc}") from exc


def keep_alive(socket, stop: threading.Event) -> None:
    """Ping every ``PING_SECONDS`` until ``stop``, so a long execution's socket stays open."""
    while not stop.wait(PING_SECONDS):
        try:
            socket.send(json.dumps({"type": "ping"}))
        except ConnectionClosed:
            return


def follow(
    base_url: str,
    token: str,
    execution_id: str,
    out: TextIO,
    *,
    from_start: bool = False,
) -> dict:
    """Print the execution's stream (all of it with ``from_start``) until it ends, over
    the Python client (``workflow_push``: it resumes after a lost connection, and falls
    back to server-sent events or long polling); return the last status."""
    try:
        with Client(base_url, token=token) as client:
            stream = client.follow(execution_id, last_seq=0 if from_start else None)
            return show_stream(stream, out)
    except WorkflowPushError as exc:
        raise ClientError(str(exc)) from exc


def whole_result(base_url: str, token: str, message: dict) -> dict:
    """A ``status`` message with its whole result: read over REST when the
    message carries a cut one (``result_truncated``)."""
    if not message.get("result_truncated"):
        return message
    path = f"/api/v1/executions/{message['execution_id']}"
    result = api_request(base_url, token, "GET", path)["result"]
    kept = {k: v for k, v in message.items() if k not in ("result_truncated", "result_size")}
    return {**kept, "result": result}


def check_completed(last: dict) -> None:
    """Raise when the followed execution ended without completing."""
    if last.get("status") in {"failed", "cancelled"}:
        raise ClientError(f"The execution {last['status']}.")
