"""Sends stored events to their execution's group, from any thread.

The in-memory channel layer is not thread-safe: its queues belong to the
event loop the consumers run on, so a send from another thread is handed to
that loop. The Redis layer publishes from the committing thread itself
(``BoundedRedisPubSubChannelLayer.publish_many_now``), on pooled connections.
Other layers, and any publish from a thread that runs an event loop (which
must not block), go through one long-lived loop per process, so a worker
pays for neither a new loop nor a new Redis connection per event.
"""

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable

from channels.layers import InMemoryChannelLayer, get_channel_layer

from executions.background import BackgroundLoop

logger = logging.getLogger(__name__)

publisher_loop = BackgroundLoop("realtime-publisher")
_consumer_loop: asyncio.AbstractEventLoop | None = None
# Seconds ``after_pushes`` waits at most for a hand-over to be taken.
AFTER_PUSHES_MAX_WAIT = 1.0
# The latest hand-over of messages to this process's consumer loop.
_handing: concurrent.futures.Future | None = None


def group_name_for(execution_id) -> str:
    return f"execution.{execution_id}"


def bind_consumer_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the loop this process's consumers run on; called when one connects."""
    global _consumer_loop, _handing
    if loop is not _consumer_loop:
        _consumer_loop, _handing = loop, None


def publish_many(messages: list[tuple[str, dict]]) -> None:
    """Send each ``(group, message)`` to the group's subscribers, in order: on the
    Redis layer at once (from a thread without an event loop), in one round trip
    per shard, else in one hand-over to a loop without waiting; failures are
    logged, never raised."""
    layer = get_channel_layer()
    if hasattr(layer, "publish_many_now") and not _in_event_loop():
        layer.publish_many_now(messages)
        return
    if isinstance(layer, InMemoryChannelLayer):
        loop = _consumer_loop
        if loop is None or not loop.is_running():
            return  # no consumer of this process is listening
    else:
        loop = publisher_loop.loop
    future = asyncio.run_coroutine_threadsafe(_group_send_each(layer, messages), loop)
    future.add_done_callback(_report_failure)
    if loop is _consumer_loop:
        global _handing
        _handing = future  # the loop's own: taken in order after the earlier ones


def after_pushes(fn: Callable[[], object]) -> None:
    """Call ``fn`` once the messages published so far have been handed to this
    process's subscribers: at once when none is on its way, else from the consumer
    loop, after the sends that hand-over started.

    The in-process runner starts new executions this way, so that a burst of them
    (a batch of creations) does not take the interpreter from the very sends that
    announce them.
    """
    future = _handing
    loop = _consumer_loop
    if future is None or future.done() or loop is None or not loop.is_running():
        fn()
        return
    once = _Once(fn)
    future.add_done_callback(lambda _: once())
    # Should the loop stop before it takes the hand-over, ``fn`` is called anyway.
    fallback = publisher_loop.loop
    fallback.call_soon_threadsafe(fallback.call_later, AFTER_PUSHES_MAX_WAIT, once)


class _Once:
    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn: Callable[[], object] | None = fn
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            fn, self.fn = self.fn, None
        if fn is None:
            return
        try:
            fn()
        except Exception:
            logger.exception("Could not run %r after the pushes", fn)


async def _group_send_each(layer, messages: list[tuple[str, dict]]) -> None:
    for group, message in messages:
        await layer.group_send(group, message)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _report_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("Could not publish an event: %r", future.exception())
