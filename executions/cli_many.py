"""``manage.py watch`` of several executions, or of the executions feed, on one
socket (``/api/v1/ws``).

Several executions interleave, so every message is a line of its own, led by
the execution's short id; the feed prints a line per state it sends.
"""

import json
import threading
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import connect

from executions.cli import ClientError, keep_alive, printable, render, whole_result


def multiplex_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/api/v1/ws", "", ""))


def short(execution_id: str) -> str:
    return printable(execution_id)[:8]


def feed_line(state: dict) -> str:
    """One state of the executions feed, e.g. ``[8d3c1a2b] running  40% nightly: Running…``."""
    tags = f" #{' #'.join(printable(t) for t in state['tags'])}" if state["tags"] else ""
    return (
        f"[{short(state['id'])}] {printable(state['status']):<9} {state['progress']:3d}% "
        f"{printable(state['workflow_name'])}: {printable(state['message'])}{tags}"
    )


def follow_many(
    base_url: str, token: str, execution_ids: list[str], out: TextIO, *, from_start: bool = False
) -> dict[str, dict]:
    """Print the streams of ``execution_ids`` on one socket until each has ended;
    return each one's last status (an execution refused: its ``error``)."""
    last: dict[str, dict] = {}
    waiting = set(execution_ids)

    def subscribe(socket) -> None:
        for execution_id in execution_ids:
            request = {"type": "subscribe", "execution_id": execution_id}
            if from_start:
                request["last_seq"] = 0
            socket.send(json.dumps(request))

    def show(message: dict) -> bool:
        execution_id = message.get("execution_id")
        if message["type"] == "unsubscribed":
            waiting.discard(execution_id)
            return not waiting
        if message["type"] == "error" and execution_id is not None:
            last[execution_id] = message
            waiting.discard(execution_id)
        elif message["type"] == "status":
            message = last[execution_id] = whole_result(base_url, token, message)
        prefix = f"[{short(execution_id)}] " if execution_id else ""
        for line in render(message).splitlines():
            out.write(f"{prefix}{line.lstrip()}\n")
        out.flush()
        return not waiting

    _run(base_url, token, subscribe, show)
    return last


def follow_feed(base_url: str, token: str, feed_filter: dict, out: TextIO) -> None:
    """Print the executions feed (its newest executions, then each change) until
    the socket closes or the process is interrupted."""

    def subscribe(socket) -> None:
        socket.send(json.dumps({"type": "subscribe", "feed": "executions", "filter": feed_filter}))

    def show(message: dict) -> bool:
        if message["type"] == "execution":
            out.write(feed_line(message["execution"]) + "\n")
        elif message["type"] == "error":
            raise ClientError(f"The feed was refused: {printable(message['message'])}")
        out.flush()
        return False

    _run(base_url, token, subscribe, show)


def _run(base_url: str, token: str, subscribe, show) -> None:
    """Open the socket, ``subscribe``, and hand each message to ``show`` until it
    returns True (then close) or the server closes."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with connect(multiplex_url(base_url), additional_headers=headers) as socket:
            stop = threading.Event()
            threading.Thread(target=keep_alive, args=(socket, stop), daemon=True).start()
            try:
                subscribe(socket)
                for frame in socket:
                    message = json.loads(frame)
                    if message["type"] != "pong" and show(message):
                        return
            except ConnectionClosed:
                pass
            finally:
                stop.set()
            code = socket.close_code
    except (OSError, InvalidURI, InvalidStatus) as exc:
        raise ClientError(f"Could not connect to {base_url}: {exc}") from exc
    raise ClientError(f"The server closed the socket with code {code}.")


def check_all_completed(last: dict[str, dict]) -> None:
    """Raise when any followed execution did not complete."""
    problems = [
        f"{short(execution_id)} {message.get('status') or 'refused'}"
        for execution_id, message in last.items()
        if message.get("status") != "completed"
    ]
    if problems:
        raise ClientError(f"Not completed: {', '.join(problems)}.")
