"""The channel layers the settings name (``CHANNEL_LAYERS``): one for a single
process, and Redis pub/sub for many.

``LocalChannelLayer`` is Channels' in-memory layer with costs that do not grow
with the number of sockets; ``BoundedRedisPubSubChannelLayer`` is
channels-redis's pub/sub layer whose queues drop their oldest message when
full, which retries a command once after Redis restarts, and which publishes
from a committing thread (``publish_many_now``) on pooled connections with
short timeouts. Both take a listener per group (``group_listen``): the
sockets of an event loop share one (``realtime.fanout``). Nothing a layer
drops is lost for good: a socket notices a gap in ``seq`` (or the log
watchdog does) and reads the missing events from the event log.

They replace private parts of their libraries, so they live with the other
patches (``realtime.patches``; docs/patches.md).
"""

from realtime.patches.channels import DroppingQueue, Listener, LocalChannelLayer
from realtime.patches.channels_redis import BoundedRedisPubSubChannelLayer, ThreadPublisher

__all__ = [
    "BoundedRedisPubSubChannelLayer",
    "DroppingQueue",
    "Listener",
    "LocalChannelLayer",
    "ThreadPublisher",
]
