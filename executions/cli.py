"""The terminal client behind ``manage.py run`` and ``manage.py watch``.

It speaks to a running service the way any client does: REST to start an
execution, the WebSocket stream to follow it.
"""

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import connect

BAR_WIDTH = 30
# The server closes sockets that send nothing for REALTIME_IDLE_TIMEOUT (120 s).
PING_SECONDS = 30


class ClientError(Exception):
    """The service could not be reached or refused the request; the message says why."""


def socket_url(base_url: str, execution_id: str, last_seq: int | None = None) -> str:
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = "" if last_seq is None else f"last_seq={last_seq}"
    return urlunsplit((scheme, parts.netloc, f"/api/v1/ws/executions/{execution_id}", query, ""))


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
        raise ClientError(f"{method} {path} -> {exc.code}: {exc.read().decode()}") from exc
    except OSError as exc:
        raise ClientError(f"Could not reach {base_url}: {exc}") from exc


def render(message: dict) -> str:
    """One message as a terminal line."""
    if message["type"] == "status":
        filled = BAR_WIDTH * message["progress"] // 100
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"[{bar}] {message['progress']:3d}% {message['status']:<9} {message['message']}"
        if message["status"] == "completed":
            line += f"\nresult: {json.dumps(message['result'])}"
        elif message["status"] == "failed":
            line += f"\nerror: {message['error']}"
        return line
    if message["type"] == "log":
        source = message.get("node_id") or "engine"
        return f"  log {message['level']:<7} [{source}] {message['message']}"
    if message["type"] == "error":
        return f"error: {message['message']}"
    return json.dumps(message)


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
    write: Callable[[str], None],
    *,
    from_start: bool = False,
) -> dict:
    """Print the execution's stream (all of it with ``from_start``); return the last status."""
    url = socket_url(base_url, execution_id, last_seq=0 if from_start else None)
    headers = {"Authorization": f"Bearer {token}"}
    last_status: dict = {}
    try:
        with connect(url, additional_headers=headers) as socket:
            stop = threading.Event()
            threading.Thread(target=keep_alive, args=(socket, stop), daemon=True).start()
            try:
                for frame in socket:
                    message = json.loads(frame)
                    if message["type"] == "pong":
                        continue
                    last_status = message if message["type"] == "status" else last_status
                    write(render(message))
            except ConnectionClosed:
                pass
            finally:
                stop.set()
            code = socket.close_code
    except (OSError, InvalidURI, InvalidStatus) as exc:
        raise ClientError(f"Could not connect to {base_url}: {exc}") from exc
    if code != 1000:
        raise ClientError(f"The server closed the stream with code {code}.")
    return last_status
