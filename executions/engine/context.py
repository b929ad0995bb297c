"""What a running node may do besides computing its output."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

LogSink = Callable[[str, str], Awaitable[None]]
ProgressSink = Callable[[float], None]
# (stream name, piece, whether the piece is a JSON value)
StreamSink = Callable[[str, Any, bool], Awaitable[None]]


@dataclass
class NodeContext:
    """Handed to ``NodeType.run``; ties the node to its execution."""

    execution_id: Any
    node_id: str
    attempt: int
    _log: LogSink
    _progress: ProgressSink
    _stream: StreamSink
    skip_downstream_requested: bool = field(default=False, init=False)

    async def log(self, message: str, level: str = "info") -> None:
        """Record a log line (``debug``, ``info``, ``warning`` or ``error``) for this node;
        dropped once the execution's log is cut (``EXECUTIONS_MAX_LOG_LINES``)."""
        await self._log(level, message)

    async def stream(self, text: str, name: str = "output") -> None:
        """Append ``text`` to this node's stream ``name``, sent live as ``chunk`` events
        (the pieces of ``EXECUTIONS_CHUNK_INTERVAL`` coalesced into one)."""
        await self._stream(name, text, False)

    async def stream_json(self, piece: Any, name: str = "output") -> None:
        """Append one JSON value to this node's stream ``name`` (a chunk's pieces make a list)."""
        await self._stream(name, piece, True)

    def progress(self, fraction: float) -> None:
        """Report how much of this node is done, 0.0 to 1.0; it never goes back."""
        self._progress(min(1.0, max(0.0, float(fraction))))

    def skip_downstream(self) -> None:
        """Mark every node downstream of this one ``skipped`` once this node completes."""
        self.skip_downstream_requested = True
