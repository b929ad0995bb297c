"""Channels' consumer loop and in-memory layer, with their per-message costs removed.

``ChannelFreeConsumer`` copies ``AsyncConsumer.__call__`` and ``dispatch``:
a socket joins no channel of its own, and a handler runs without the hop to
Channels' database thread. ``LocalChannelLayer`` replaces
``InMemoryChannelLayer``'s expiry, sends and queues. docs/patches.md says
why, and how to check them on an upgrade.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from copy import deepcopy

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import InMemoryChannelLayer

from realtime import metrics
from realtime.patches.versions import Supported

SUPPORTED: Supported = {"channels": ("4.3.2",)}

logger = logging.getLogger(__name__)

# Called by a layer with each message sent to a group (``group_listen``).
Listener = Callable[[dict], None]


class ChannelFreeConsumer(AsyncJsonWebsocketConsumer):
    """Channels' JSON socket consumer without a channel of its own; a subclass reads
    the groups' messages itself (``realtime.fanout``)."""

    async def __call__(self, scope, receive, send) -> None:
        """Channels' ``AsyncConsumer.__call__`` without a channel: the client's
        messages are read here; ``release`` runs however the consumer ends."""
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        # Channels runs ``disconnect`` only when the client disconnects: not
        # when a handler raises, nor when the server cancels the consumer.
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            await self.release()

    async def dispatch(self, message: dict) -> None:
        """Channels' ``AsyncConsumer.dispatch`` without closing the database
        connections first: this consumer reads only through ``realtime.db``."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await self.guarded(handler(message))

    async def guarded(self, work: Coroutine) -> None:
        """Run a handler's ``work``; called for every message."""
        await work

    async def release(self) -> None:
        """Called once the consumer ends, however it ends."""


class DroppingQueue(asyncio.Queue):
    """A bounded queue whose ``put_nowait`` drops the oldest item when full."""

    def put_nowait(self, item) -> None:
        if self.full():
            self.get_nowait()
            metrics.layer_dropped("queue_full")
            logger.debug("Dropped a message for a socket that is not keeping up")
        super().put_nowait(item)


class LocalChannelLayer(InMemoryChannelLayer):
    """The in-memory layer for one process; full queues drop their oldest message."""

    expiry_interval = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._expired_at = 0.0
        self.listeners: dict[str, Listener] = {}

    async def group_listen(self, group: str, listener: Listener) -> None:
        """Call ``listener`` with each message sent to ``group`` from now on (one
        listener a group; it must not wait, and must not change the message)."""
        self.require_valid_group_name(group)
        self.listeners[group] = listener

    async def group_unlisten(self, group: str, listener: Listener) -> None:
        if self.listeners.get(group) is listener:
            del self.listeners[group]

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = DroppingQueue(maxsize=self.get_capacity(channel))
        return queue

    def _clean_expired(self) -> None:
        """Drop the messages that waited longer than ``expiry``, at most once per
        ``expiry_interval``; never a group membership (docs/patches.md)."""
        now = time.monotonic()
        if now - self._expired_at < self.expiry_interval:
            return
        self._expired_at = now
        wall_clock = time.time()
        for channel, queue in list(self.channels.items()):
            while not queue.empty() and queue._queue[0][0] < wall_clock:
                queue.get_nowait()
                metrics.layer_dropped("expired")
                logger.debug("Dropped a message that waited too long for a socket")
            # A queue someone waits on stays: their receive must see what comes next.
            if queue.empty() and not queue._getters:
                self.channels.pop(channel, None)

    async def group_discard(self, group, channel):
        await super().group_discard(group, channel)
        queue = self.channels.get(channel)
        if queue is not None and queue.empty() and not queue._getters:
            self.channels.pop(channel, None)

    def forget_channel(self, channel: str) -> None:
        """Drop what still waits for ``channel``, whose consumer has ended."""
        self.channels.pop(channel, None)

    async def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._queue(channel).put_nowait((time.time() + self.expiry, deepcopy(message)))

    async def receive(self, channel):
        self.require_valid_channel_name(channel)
        self._clean_expired()
        # The queue stays while its channel is in use (a socket receives one
        # message after another); an idle one goes with the next expiry pass.
        _, message = await self._queue(channel).get()
        return message

    async def group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        item = (time.time() + self.expiry, deepcopy(message))
        for channel in list(self.groups.get(group, ())):
            self._queue(channel).put_nowait(item)
        listener = self.listeners.get(group)
        if listener is not None:
            listener(item[1])
