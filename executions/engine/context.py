"""What a running node may do besides computing its output."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

LogSink = Callable[[str | None, str, str], Awaitable[None]]


@dataclass
class NodeContext:
    """Handed to ``NodeType.run``; ties the node to its execution."""

    execution_id: Any
    node_id: str
    _log: LogSink

    async def log(self, message: str, level: str = "info") -> None:
        """Record a log line for this execution, attributed to this node."""
        await self._log(self.node_id, level, message)
