"""A client of the workflow push service: its REST API, and each execution's events
followed live over WebSocket, server-sent events or long polling.

    from workflow_push import Client

    with Client("http://127.0.0.1:8037", token="...") as client:
        execution = client.create_execution(workflow_id, {"name": "Ada"})
        for event in client.follow(execution["id"]):
            print(event["type"], event["seq"])

``AsyncClient`` is the same for asyncio (``async for event in client.follow(id)``).
"""

from workflow_push._stream import REFUSALS, TERMINAL_STATUSES
from workflow_push.async_client import AsyncClient
from workflow_push.async_follow import AsyncExecutionStream
from workflow_push.client import Client
from workflow_push.errors import (
    ApiError,
    StreamError,
    StreamLost,
    StreamRefused,
    Unreachable,
    WorkflowPushError,
)
from workflow_push.follow import ExecutionStream
from workflow_push.options import TRANSPORTS, FollowOptions

__all__ = [
    "REFUSALS",
    "TERMINAL_STATUSES",
    "TRANSPORTS",
    "ApiError",
    "AsyncClient",
    "AsyncExecutionStream",
    "Client",
    "ExecutionStream",
    "FollowOptions",
    "StreamError",
    "StreamLost",
    "StreamRefused",
    "Unreachable",
    "WorkflowPushError",
]
