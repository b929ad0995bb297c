"""channels-redis's pub/sub layer with bounded queues, group listeners, a retry
after Redis restarts, and publishing from a committing thread.

The subclasses replace private parts of ``RedisPubSubChannelLayer``
(``_get_layer``), ``RedisPubSubLoopLayer`` (its shards, ``_subscribe_to_channel``)
and ``RedisSingleShardConnection`` (``_receive_message``); ``ThreadPublisher``
names and places group channels as channels-redis does. docs/patches.md
says why, and how to check them on an upgrade.
"""

import asyncio
import logging
import threading
import time

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _consistent_hash, _wrap_close, decode_hosts
from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from realtime import metrics
from realtime.patches.channels import DroppingQueue, Listener
from realtime.patches.versions import Supported

SUPPORTED: Supported = {"channels-redis": ("4.3.0",)}

logger = logging.getLogger(__name__)

# Seconds a PUBLISH from a committing thread may take (connecting included).
PUBLISH_TIMEOUT = 1.0
# Seconds without publishing after a PUBLISH failed.
PUBLISH_PAUSE = 1.0


class ReconnectingShard(RedisSingleShardConnection):
    """Retries a command once when its connection was lost (e.g. Redis restarted)."""

    async def publish(self, channel, message):
        await self._retrying(super().publish, channel, message)

    async def subscribe(self, channel):
        await self._retrying(super().subscribe, channel)

    async def unsubscribe(self, channel):
        await self._retrying(super().unsubscribe, channel)

    async def _retrying(self, command, *args):
        try:
            await command(*args)
        except (RedisConnectionError, OSError):
            logger.warning("Redis connection lost; retrying on a new connection")
            await command(*args)

    def _receive_message(self, message):
        if message is not None:
            name = message["channel"]
            listener = self.channel_layer.listeners.get(
                name.decode() if isinstance(name, bytes) else name
            )
            if listener is not None:
                try:
                    listener(self.channel_layer.channel_layer.deserialize(message["data"]))
                except Exception:
                    logger.exception("A listener failed to take a message of %s", name)
        super()._receive_message(message)


class BoundedRedisPubSubLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, capacity: int = 1000, hosts=None, **kwargs):
        super().__init__(*args, hosts=hosts, **kwargs)
        self.capacity = capacity
        self._shards = [ReconnectingShard(host, self) for host in decode_hosts(hosts)]
        # By group channel name (the layer's ``_get_group_channel_name``).
        self.listeners: dict[str, Listener] = {}

    async def group_listen(self, group: str, listener: Listener) -> None:
        """Call ``listener`` with each message sent to ``group`` once this returns
        (one listener a group; it must not wait, and must not change the message)."""
        name = self._get_group_channel_name(group)
        self.listeners[name] = listener
        try:
            await self._get_shard(name).subscribe(name)
        except BaseException:
            await self.group_unlisten(group, listener)
            raise

    async def group_unlisten(self, group: str, listener: Listener) -> None:
        name = self._get_group_channel_name(group)
        if self.listeners.get(name) is not listener:
            return
        del self.listeners[name]
        if name not in self.groups:
            await self._get_shard(name).unsubscribe(name)

    async def group_discard(self, group, channel):
        name = self._get_group_channel_name(group)
        channels = self.groups.get(name, set())
        if channel in channels and len(channels) == 1 and name in self.listeners:
            del self.groups[name]  # the listener keeps the subscription
            return
        await super().group_discard(group, channel)

    async def _subscribe_to_channel(self, channel):
        self.channels[channel] = DroppingQueue(maxsize=self.capacity)
        await self._get_shard(channel).subscribe(channel)


class ThreadPublisher:
    """PUBLISH to a layer's group channels from any thread, blocking briefly."""

    def __init__(self, layer: "BoundedRedisPubSubChannelLayer"):
        self.layer = layer
        self.prefix = layer._kwargs.get("prefix", "asgi")
        self.clients = [
            # One retry, at once, for a connection lost mid-command (redis-py's
            # default retries back off for seconds).
            Redis(connection_pool=pool, retry=Retry(NoBackoff(), 1))
            for pool in self._pools(layer._kwargs.get("hosts"))
        ]
        self.paused_until = 0.0
        self.dropped = 0

    @staticmethod
    def _pools(hosts) -> list[ConnectionPool]:
        pools = []
        for host in decode_hosts(hosts):
            options = dict(host)
            address = options.pop("address")
            options.pop("socket_timeout", None)
            options.pop("socket_connect_timeout", None)
            pools.append(
                ConnectionPool.from_url(
                    address,
                    **options,
                    socket_timeout=PUBLISH_TIMEOUT,
                    socket_connect_timeout=PUBLISH_TIMEOUT,
                )
            )
        return pools

    def publish_many(self, messages: list[tuple[str, dict]]) -> int:
        """Send each ``(group, message)`` in order, in one round trip per Redis
        shard; how many were sent (the others were dropped)."""
        if time.monotonic() < self.paused_until:
            self.dropped += len(messages)
            metrics.layer_dropped("publish_failed", len(messages))
            return 0
        pipelines: dict[int, Pipeline] = {}
        for group, message in messages:
            channel = f"{self.prefix}__group__{group}"
            shard = _consistent_hash(channel, len(self.clients))
            if shard not in pipelines:
                pipelines[shard] = self.clients[shard].pipeline(transaction=False)
            pipelines[shard].publish(channel, self.layer.serialize(message))
        sent = 0
        for pipeline in pipelines.values():
            count = len(pipeline)
            try:
                pipeline.execute()
                sent += count
            except (RedisError, OSError) as error:
                self.paused_until = time.monotonic() + PUBLISH_PAUSE
                logger.warning(
                    "Could not publish to Redis (%r); not trying again for %g s",
                    error,
                    PUBLISH_PAUSE,
                )
        self.dropped += len(messages) - sent
        metrics.layer_dropped("publish_failed", len(messages) - sent)
        return sent

    def close(self) -> None:
        for client in self.clients:
            client.connection_pool.disconnect()


class BoundedRedisPubSubChannelLayer(RedisPubSubChannelLayer):
    def __init__(self, *args, capacity: int = 1000, **kwargs):
        super().__init__(*args, **kwargs)
        self.capacity = capacity
        self._publisher: ThreadPublisher | None = None
        self._publisher_lock = threading.Lock()

    def publish_many_now(self, messages: list[tuple[str, dict]]) -> int:
        """``group_send`` of each ``(group, message)``, in order, from a thread
        without an event loop, in one round trip per shard, waiting for Redis at
        most ``PUBLISH_TIMEOUT``; how many were sent (the others were dropped)."""
        with self._publisher_lock:
            if self._publisher is None:
                self._publisher = ThreadPublisher(self)
        return self._publisher.publish_many(messages)

    def close_publisher(self) -> None:
        """Close ``publish_many_now``'s connections (tests, shutdown)."""
        with self._publisher_lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        if loop not in self._layers:
            self._layers[loop] = BoundedRedisPubSubLoopLayer(
                *self._args, capacity=self.capacity, channel_layer=self, **self._kwargs
            )
            # Closes the loop's connections when the loop closes, as the base class does.
            _wrap_close(self, loop)
        return self._layers[loop]
