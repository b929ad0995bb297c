"""A node's named streams (``ctx.stream``), coalesced into ``chunk`` records.

The pieces written to one stream within ``EXECUTIONS_CHUNK_INTERVAL`` become
one chunk: the first piece starts the interval, so no piece waits longer than
it. A text stream's pieces are concatenated, a JSON stream's make a list. A
chunk is handed over early once its pieces reach
``EXECUTIONS_CHUNK_MAX_BYTES``, and every waiting chunk when the node's
attempt ends, before its ``completed`` or ``failed`` event.
"""

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core import checks

from executions.services.records import piece_size
from executions.wire import chunk_data

STREAM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@checks.register
def check_stream_settings(**kwargs) -> list[checks.Error]:
    """Values with which streams or records cannot work."""
    minimums = {
        "EXECUTIONS_CHUNK_INTERVAL": 0,
        # A chunk holds at least one whole character of up to 4 bytes.
        "EXECUTIONS_CHUNK_MAX_BYTES": 4,
        "EXECUTIONS_MAX_STREAM_BYTES": 0,
        "EXECUTIONS_MAX_STREAMS_PER_NODE": 1,
        "EXECUTIONS_RECORD_BATCH": 1,
        "EXECUTIONS_RECORDS_PENDING": 1,
        "EXECUTIONS_RECORD_WRITERS": 1,
    }
    return [
        checks.Error(
            f"{name} is {getattr(settings, name)!r}; it must be at least {minimum}.",
            id="executions.E130",
        )
        for name, minimum in minimums.items()
        if not getattr(settings, name) >= minimum
    ]


@dataclass
class Buffer:
    """The pieces of one stream waiting to become a chunk."""

    json: bool
    pieces: list = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class NodeStreams:
    """The streams of one attempt of one node; ``emit`` takes each chunk's data."""

    def __init__(self, *, node_id: str, attempt: int, emit: Callable[[dict], None]):
        self.node_id = node_id
        self.attempt = attempt
        self.emit = emit
        self.buffers: dict[str, Buffer] = {}
        self.kinds: dict[str, bool] = {}  # each stream's: JSON pieces or text
        self.closed = False

    def add(self, name: str, piece: Any, *, is_json: bool) -> None:
        """Add a piece (a text, or a JSON value when ``is_json``) to stream ``name``."""
        self.check(name, is_json)
        if is_json:
            self.buffer_piece(name, json_piece(piece), is_json=True)
            return
        for part in text_parts(text_piece(piece), settings.EXECUTIONS_CHUNK_MAX_BYTES):
            self.buffer_piece(name, part, is_json=False)

    def buffer_piece(self, name: str, piece: Any, *, is_json: bool) -> None:
        buffer = self.buffers.get(name)
        if buffer is None:
            buffer = self.buffers[name] = Buffer(json=is_json)
        buffer.pieces.append(piece)
        buffer.size += piece_size(piece)
        if buffer.size >= settings.EXECUTIONS_CHUNK_MAX_BYTES:
            self.flush(name)
        elif buffer.timer is None:
            loop = asyncio.get_running_loop()
            buffer.timer = loop.call_later(settings.EXECUTIONS_CHUNK_INTERVAL, self.flush, name)

    def check(self, name: str, is_json: bool) -> None:
        if self.closed:
            raise RuntimeError(
                f"Node '{self.node_id}' has finished: its streams take no more pieces."
            )
        if not isinstance(name, str) or not STREAM_NAME.fullmatch(name):
            raise ValueError(
                f"Stream name {name!r} is not valid: use 1 to 64 letters, digits, '_', '.' or '-'."
            )
        limit = settings.EXECUTIONS_MAX_STREAMS_PER_NODE
        if name not in self.kinds and len(self.kinds) >= limit:
            raise ValueError(
                f"Node '{self.node_id}' has {limit} streams already "
                f"(EXECUTIONS_MAX_STREAMS_PER_NODE): write to one of them."
            )
        if self.kinds.setdefault(name, is_json) != is_json:
            kind, call = ("JSON", "ctx.stream_json") if not is_json else ("text", "ctx.stream")
            raise ValueError(f"Stream '{name}' is a {kind} stream: write to it with {call}.")

    def flush(self, name: str) -> None:
        """Hand stream ``name``'s waiting pieces over as one chunk."""
        buffer = self.buffers.pop(name, None)
        if buffer is None:
            return
        if buffer.timer is not None:
            buffer.timer.cancel()
        data = buffer.pieces if buffer.json else "".join(buffer.pieces)
        self.emit(chunk_data(node_id=self.node_id, stream=name, attempt=self.attempt, data=data))

    def close(self) -> None:
        """The attempt ended: hand every waiting chunk over; take no more pieces."""
        self.closed = True
        for name in list(self.buffers):
            self.flush(name)


def text_piece(piece: Any) -> str:
    if not isinstance(piece, str):
        raise TypeError(f"ctx.stream takes text, not {type(piece).__name__}: use ctx.stream_json.")
    # PostgreSQL's JSON cannot hold U+0000.
    return piece.replace("\x00", "\ufffd")


def text_parts(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` bytes, cut between characters."""
    data = text.encode()
    parts, start = [], 0
    while len(data) - start > limit:
        end = start + limit
        while (data[end] & 0xC0) == 0x80:  # inside a character: cut before it
            end -= 1
        parts.append(data[start:end].decode())
        start = end
    if start < len(data):
        parts.append(data[start:].decode())
    return parts


def json_piece(piece: Any) -> Any:
    """``piece`` as a JSON value would store it, within one chunk's size."""
    try:
        text = json.dumps(piece, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ctx.stream_json takes a JSON value: {exc}") from exc
    limit = settings.EXECUTIONS_CHUNK_MAX_BYTES
    if len(text.encode()) > limit:
        raise ValueError(
            f"A JSON piece of {len(text.encode())} bytes is over EXECUTIONS_CHUNK_MAX_BYTES "
            f"({limit}): stream smaller pieces."
        )
    return json.loads(text.replace("\\u0000", "\\ufffd"))
