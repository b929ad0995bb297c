"""Sockets, wire messages and event-log reads for the consumer tests."""

import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator

import realtime.signals
from executions.models import ExecutionEvent
from project.asgi import application
from realtime.publish import group_name_for
from realtime.watchdog import watchdog

# Generous: a message that is due arrives in milliseconds; this only bounds a failure.
TIMEOUT = 5

STATUS_FIELDS = {
    "type",
    "execution_id",
    "status",
    "progress",
    "message",
    "result",
    "error",
    "execution_time",
    "seq",
    "timestamp",
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|\+00:00)$")

Headers = Iterable[tuple[bytes, bytes]]


def path_for(execution_id: Any, query: str = "") -> str:
    path = f"/api/v1/ws/executions/{execution_id}"
    return f"{path}?{query}" if query else path


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


@asynccontextmanager
async def open_socket(path: str, headers: Headers = ()) -> AsyncIterator[WebsocketCommunicator]:
    """A socket whose handshake was accepted; it is disconnected on exit."""
    communicator = WebsocketCommunicator(application, path, headers=list(headers))
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected, "the handshake was refused; refusals must come after accepting"
    try:
        yield communicator
    finally:
        if not communicator.future.done():
            await communicator.disconnect(timeout=TIMEOUT)
        elif not communicator.future.cancelled():
            communicator.future.result()  # surfaces a crash of the consumer


async def receive(communicator: WebsocketCommunicator, timeout: float = TIMEOUT) -> dict:
    """The next message, decoded; fails if the socket closes instead."""
    output = await communicator.receive_output(timeout)
    assert output["type"] == "websocket.send", f"expected a message, got {output}"
    assert "text" in output, f"expected a text frame, got {output}"
    return json.loads(output["text"])


async def receive_close(communicator: WebsocketCommunicator, timeout: float = TIMEOUT) -> int:
    """The close code of the next output; fails if a message comes instead."""
    output = await communicator.receive_output(timeout)
    assert output["type"] == "websocket.close", f"expected the socket to close, got {output}"
    return output.get("code")


async def receive_until_close(
    communicator: WebsocketCommunicator, timeout: float = TIMEOUT
) -> tuple[list[dict], int]:
    """Every message up to the server's close, and the close code."""
    messages = []
    while True:
        output = await communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            return messages, output.get("code")
        messages.append(json.loads(output["text"]))


async def receive_refusal(communicator: WebsocketCommunicator) -> tuple[str, int]:
    """The error text and close code of a refused socket."""
    error = await receive(communicator)
    assert set(error) == {"type", "message"}, error
    assert error["type"] == "error"
    assert isinstance(error["message"], str) and error["message"].strip()
    return error["message"], await receive_close(communicator)


async def assert_open(communicator: WebsocketCommunicator) -> None:
    """Prove the socket is still served: a ping gets its pong."""
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}


async def record(service: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call an executions service from a test coroutine, as the engine does."""
    return await database_sync_to_async(service)(**kwargs)


@database_sync_to_async
def stored_events(execution_id: Any) -> list[ExecutionEvent]:
    return list(ExecutionEvent.objects.filter(execution_id=execution_id).order_by("seq"))


def expected(event: ExecutionEvent) -> dict:
    """A stored event as it must appear on the wire (timestamp as a datetime)."""
    return {
        "type": event.type,
        "execution_id": str(event.execution_id),
        **event.data,
        "seq": event.seq,
        "timestamp": event.created_at,
    }


def parsed(message: dict) -> dict:
    """``message`` with its timestamp checked and parsed, to compare with ``expected``."""
    assert TIMESTAMP.match(message["timestamp"]), message["timestamp"]
    return {**message, "timestamp": datetime.fromisoformat(message["timestamp"])}


def snapshot_of(events: list[ExecutionEvent], seq: int) -> dict:
    """The snapshot that is "as of" ``seq``: the state then, the seq and time of that event."""
    upto = [event for event in events if event.seq <= seq]
    state = next(event for event in reversed(upto) if event.type == "status")
    return {**expected(state), "seq": upto[-1].seq, "timestamp": upto[-1].created_at}


def assert_stream_matches_log(messages: list[dict], events: list[ExecutionEvent]) -> None:
    """A snapshot stream: the snapshot, then every later stored event once, in order."""
    snapshot, *live = messages
    assert set(snapshot) == STATUS_FIELDS
    assert parsed(snapshot) == snapshot_of(events, snapshot["seq"])
    assert [parsed(m) for m in live] == [expected(e) for e in events if e.seq > snapshot["seq"]]


class Publisher:
    """Stands in for the channel-layer push of new events, to lose or repeat some."""

    def __init__(
        self, monkeypatch, *, drop: Callable[[dict], bool] = lambda event: False, repeat: int = 1
    ):
        self.original = realtime.signals.publish_many
        self.drop = drop
        self.repeat = repeat
        self.dropped: list[int] = []
        monkeypatch.setattr(realtime.signals, "publish_many", self)

    def __call__(self, messages: list[tuple[str, dict]]) -> None:
        kept = []
        for group, message in messages:
            event = message.get("event")
            if event is not None and self.drop(event):
                self.dropped.append(event["seq"])
                continue
            kept += [(group, message)] * (self.repeat if event is not None else 1)
        self.original(kept)


def group_members(execution_id: Any) -> set[str]:
    """What this process's layer routes the execution's group to: channels, and the
    event loop's listener (``realtime.fanout``)."""
    layer = get_channel_layer()
    group = group_name_for(execution_id)
    if isinstance(layer, InMemoryChannelLayer):
        members = set(layer.groups.get(group, ()))
        listener = getattr(layer, "listeners", {}).get(group)
    else:
        loop_layer = layer._get_layer()  # Redis pub/sub: this event loop's subscriptions
        name = loop_layer._get_group_channel_name(group)
        members = set(loop_layer.groups.get(name, ()))
        listener = loop_layer.listeners.get(name)
        if not members and listener is None and name in loop_layer._get_shard(name)._subscribed_to:
            return {f"(nobody, but still subscribed to {name} in Redis)"}
    if listener is not None:
        members.add(f"(the listener of {group})")
    return members


def watched(execution_id: Any) -> list:
    """The sockets of this execution the event loop's watchdog checks."""
    return [s for s in watchdog().subscribers if execution_id in s.execution_ids()]


def socket_slots(user_id: Any) -> int:
    """The sockets counted against the user's REALTIME_MAX_SOCKETS_PER_USER on this loop."""
    return watchdog().sockets_per_user.get(user_id, 0)


def assert_released(execution_id: Any, user_id: Any) -> None:
    """Nothing of an ended socket remains: no watchdog entry, no socket slot, no membership."""
    assert watched(execution_id) == []
    assert socket_slots(user_id) == 0
    assert group_members(execution_id) == set()
