"""The execution stream: ``/api/v1/ws/executions/{execution_id}``.

A socket subscribes to its execution's group *before* it reads the current
state, and forwards only events newer than the last ``seq`` it sent, filling
any gap from the event log. That makes every stream complete, ordered and
free of duplicates even when the channel layer drops or reorders messages.
"""

import asyncio
import json
import uuid

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from executions.selectors import events_after, execution_visible_to
from realtime import events
from realtime.auth import SESSION, origin_allowed
from realtime.db import db_read
from realtime.publish import bind_consumer_loop, group_name_for
from realtime.watchdog import watchdog

CLOSE_NORMAL = 1000
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

NOT_FOUND = "Execution not found: check the id, and that you may see this execution."


class ExecutionConsumer(AsyncJsonWebsocketConsumer):
    execution_id: uuid.UUID | None = None
    last_seq = 0
    finished = False

    async def connect(self) -> None:
        bind_consumer_loop(asyncio.get_running_loop())
        self.lock = asyncio.Lock()
        self.group = None
        self._stale_at: int | None = None
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return await self.refuse(
                "Authentication required: send 'Authorization: Bearer <token>' "
                "or log in with a session.",
                CLOSE_UNAUTHENTICATED,
            )
        if self.scope.get("auth_method") == SESSION and not origin_allowed(self.scope):
            return await self.refuse(
                "Origin not allowed for a cookie-authenticated socket.", CLOSE_FORBIDDEN
            )
        try:
            execution_id = uuid.UUID(self.scope["url_route"]["kwargs"]["execution_id"])
        except ValueError:
            return await self.refuse(NOT_FOUND, CLOSE_NOT_FOUND)
        resume_from, problem = parse_last_seq(self.scope.get("query_string", b""))
        if problem:
            return await self.refuse(problem, CLOSE_BAD_REQUEST)
        execution = await db_read(execution_visible_to)(user, execution_id)
        if execution is None:
            return await self.refuse(NOT_FOUND, CLOSE_NOT_FOUND)
        await self.subscribe(execution.id)
        await self.send_initial(resume_from)

    async def subscribe(self, execution_id: uuid.UUID) -> None:
        self.execution_id = execution_id
        self.group = group_name_for(execution_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        watchdog().add(self)

    async def send_initial(self, resume_from: int | None) -> None:
        """Send the snapshot, or the stored events after ``resume_from``."""
        # Read after subscribing: anything recorded from here on arrives live.
        execution = await db_read(execution_visible_to)(self.scope["user"], self.execution_id)
        async with self.lock:
            if resume_from is None:
                await self.forward(events.snapshot_message(execution))
            elif resume_from > execution.last_seq:
                await self.refuse(
                    f"last_seq {resume_from} is ahead of this execution's log "
                    f"(its newest seq is {execution.last_seq}).",
                    CLOSE_BAD_REQUEST,
                )
            else:
                self.last_seq = resume_from
                await self.catch_up_locked()
                if execution.is_finished and not self.finished:
                    await self.finish()

    async def refuse(self, text: str, code: int) -> None:
        self.finished = True
        await self.send_json(events.error_message(text))
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        self.finished = True
        if self.group is not None:
            watchdog().discard(self)
            await self.channel_layer.group_discard(self.group, self.channel_name)

    # Client -> server

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            return await self.send_json(
                events.error_message("Binary frames are not supported; send JSON text.")
            )
        try:
            content = json.loads(text_data)
        except ValueError:
            return await self.send_json(events.error_message("Invalid JSON."))
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            return await self.send_json(
                events.error_message("Each message must be a JSON object with a 'type'.")
            )
        kind = content.get("type")
        if kind == "ping":
            return await self.send_json(events.pong_message())
        if kind is None:
            return await self.send_json(events.error_message("Missing 'type'; expected 'ping'."))
        await self.send_json(
            events.error_message(f"Unknown message type {kind!r}; expected 'ping'.")
        )

    # Channel layer -> client

    async def execution_event(self, message: dict) -> None:
        """Called for each event published to this execution's group."""
        event = message["event"]
        async with self.lock:
            if self.finished or event["seq"] <= self.last_seq:
                return
            if event["seq"] == self.last_seq + 1:
                await self.forward(event)
            else:
                # The layer dropped something: the log has it all.
                await self.catch_up_locked(upto=event["seq"])

    def observe_head(self, head: int | None) -> None:
        """Called by the watchdog with the newest seq in the log."""
        if self.finished or head is None or head <= self.last_seq:
            self._stale_at = None
        elif self._stale_at == self.last_seq:
            self._stale_at = None
            asyncio.get_running_loop().create_task(self.catch_up())
        else:
            self._stale_at = self.last_seq

    async def catch_up(self) -> None:
        async with self.lock:
            await self.catch_up_locked()

    async def catch_up_locked(self, upto: int | None = None) -> None:
        if self.finished:
            return
        stored = await db_read(events_after)(self.execution_id, self.last_seq, upto=upto)
        for event in stored:
            if self.finished:
                return
            await self.forward(events.event_message(event))

    async def forward(self, message: dict) -> None:
        await self.send_json(message)
        self.last_seq = max(self.last_seq, message["seq"])
        if events.is_terminal(message):
            await self.finish()

    async def finish(self) -> None:
        self.finished = True
        await self.close(code=CLOSE_NORMAL)


def parse_last_seq(query_string: bytes) -> tuple[int | None, str | None]:
    """``(N, None)`` for ``?last_seq=N``, ``(None, None)`` without it, else ``(None, why)``."""
    from urllib.parse import parse_qs

    values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True).get("last_seq")
    if not values:
        return None, None
    raw = values[-1]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None, f"last_seq must be a non-negative integer, got {raw!r}."
    return int(raw), None
