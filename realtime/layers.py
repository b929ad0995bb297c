"""Channel layers: one for a single process, and Redis pub/sub for many.

``LocalChannelLayer`` is Channels' in-memory layer with costs that do not grow
with the number of sockets. Channels' own walks every channel and every group
member to expire old messages on each receive and each group send, and sends
a deep copy of each group message to each member from a task of its own: with
a thousand sockets that was a third of the server's time. Here expiry runs at
most once a second, and a group message is copied once and put straight onto
each member's queue (consumers only read messages). Expiry drops old messages
but never a group membership: a connected socket is never silently cut off
from its execution's events.

Both layers also take a listener per group (``group_listen``): a function the
layer calls with each message sent to the group, in order, as it arrives,
instead of queueing it for a channel that a task then reads. The sockets of
an event loop share one (``realtime.fanout``), so following an execution
costs no channel, queue or task of its own.

``RedisPubSubChannelLayer`` gives every socket an unbounded queue: a socket
that stops draining it would grow the server's memory without limit. Here a
full queue drops its oldest message instead. And after Redis restarts, the
first command on each stale connection fails; here it is retried once on a
fresh connection. Nothing is lost for good either way: a socket notices a gap
in ``seq`` (or the log watchdog does) and reads the missing events from the
event log.

A process that publishes (a worker, a server's request threads) sends each
transaction's events from the thread that committed it, with
``publish_many_now``: one pipeline of PUBLISH commands per shard on a pooled
connection, with no hand-over to an event loop's thread. Its
connections have short timeouts, and after a failure it stops trying for
``PUBLISH_PAUSE`` seconds, so a Redis that is down or stalled holds up no
write for longer than ``PUBLISH_TIMEOUT``, once per pause; what is not
published meanwhile reaches sockets from the event log.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from copy import deepcopy

from channels.layers import InMemoryChannelLayer
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

logger = logging.getLogger(__name__)

Listener = Callable[[dict], None]

# Seconds a PUBLISH from a committing thread may take (connecting included).
PUBLISH_TIMEOUT = 1.0
# Seconds without publishing after a PUBLISH failed.
PUBLISH_PAUSE = 1.0


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
        """Drop the messages that waited longer than ``expiry``; never a group membership.

        Channels' own also takes the channel of an expired message out of all its
        groups, and ends every membership older than ``group_expiry``: a socket
        that read slowly for ``expiry`` seconds, or stayed open for a day, would
        silently get no more live events. Here a membership lasts until its
        consumer leaves the group, which it does however it ends.
        """
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
