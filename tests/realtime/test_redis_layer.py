"""The Redis pub/sub channel layer as configured for production, on a real Redis."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from django.test import override_settings

from executions import services
from realtime.layers import BoundedRedisPubSubChannelLayer, DroppingQueue
from tests.realtime.helpers import bearer, open_socket, path_for, receive
from tests.services import require_redis

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def redis_layers(url: str, capacity: int = 1000) -> dict:
    """CHANNEL_LAYERS as project/settings.py builds them when REDIS_URL is set."""
    import importlib
    import os

    import project.settings

    previous = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = url
    try:
        layers = importlib.reload(project.settings).CHANNEL_LAYERS
    finally:
        if previous is None:
            os.environ.pop("REDIS_URL")
        else:
            os.environ["REDIS_URL"] = previous
        importlib.reload(project.settings)
    layers["default"]["CONFIG"]["capacity"] = capacity
    return layers


@pytest.fixture
def redis_layer():
    url = require_redis()
    with override_settings(CHANNEL_LAYERS=redis_layers(url), REALTIME_RECHECK_INTERVAL=60):
        channel_layers.backends.clear()
        yield
        channel_layers.backends.clear()


@pytest.mark.timeout(30)
async def test_an_idle_socket_still_gets_live_events_after_more_than_5_s(
    redis_layer, held_execution, token
):
    """redis-py's default 5 s socket timeout would have killed the subscription."""
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        assert (await receive(socket))["seq"] == 1
        await asyncio.sleep(7)  # idle on purpose: this is the behaviour under test
        recorded = time.monotonic()
        await database_sync_to_async(services.execution_start)(execution_id=held_execution.id)
        log = await receive(socket, timeout=2)
        status = await receive(socket, timeout=2)
        # The watchdog is off (60 s): only the channel layer can have sent these.
        assert time.monotonic() - recorded < 1
        assert (log["type"], status["type"], status["status"]) == ("log", "status", "running")


async def test_a_full_socket_queue_drops_its_oldest_message():
    queue = DroppingQueue(maxsize=2)
    for item in (1, 2, 3):
        queue.put_nowait(item)
    assert [queue.get_nowait(), queue.get_nowait()] == [2, 3]


async def test_the_layer_bounds_each_sockets_queue():
    url = require_redis()
    layer = BoundedRedisPubSubChannelLayer(hosts=[{"address": url}], capacity=3)
    channel = await layer.new_channel()
    await layer.group_add("bounded", channel)
    for n in range(10):
        await layer.group_send("bounded", {"type": "x", "n": n})
    # The messages arrive through Redis; wait until the newest has.
    deadline = time.monotonic() + 5
    queue = layer._get_layer().channels[channel]
    while time.monotonic() < deadline and (
        queue.empty() or queue._queue[-1] != layer.serialize({"type": "x", "n": 9})
    ):
        await asyncio.sleep(0.01)
    received = [(await layer.receive(channel))["n"] for _ in range(3)]
    assert received == [7, 8, 9]
    await layer.flush()


def test_the_configured_redis_connections_never_time_out_while_idle():
    """The subscription test above also passes with a 5 s timeout on the pub/sub
    layer, which polls; the setting is what keeps any blocking read alive."""
    [host] = redis_layers("redis://example:6379/0")["default"]["CONFIG"]["hosts"]
    assert host["socket_timeout"] is None
    assert host["address"] == "redis://example:6379/0"


async def received_on(layer, channel: str, timeout: float = 5) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def test_a_thread_publishes_to_a_group_without_an_event_loop():
    url = require_redis()
    layer = BoundedRedisPubSubChannelLayer(hosts=[{"address": url}])
    channel = await layer.new_channel()
    await layer.group_add("from.a.thread", channel)
    message = {"type": "execution.event", "event": {"seq": 1, "message": "é"}}
    try:
        assert await asyncio.to_thread(layer.publish_many_now, [("from.a.thread", message)]) == 1
        assert await received_on(layer, channel) == message
    finally:
        layer.close_publisher()
        await layer.flush()


async def test_a_thread_publishes_many_messages_in_order_in_one_round_trip():
    url = require_redis()
    layer = BoundedRedisPubSubChannelLayer(hosts=[{"address": url}])
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("many.a", first)
    await layer.group_add("many.b", second)
    messages = [(f"many.{'ab'[n % 2]}", {"type": "x", "n": n}) for n in range(200)]
    try:
        assert await asyncio.to_thread(layer.publish_many_now, messages[:1]) == 1
        [client] = layer._publisher.clients
        sent = []
        original = client.connection_pool.get_connection

        def counted(*args, **kwargs):
            sent.append(1)
            return original(*args, **kwargs)

        client.connection_pool.get_connection = counted
        assert await asyncio.to_thread(layer.publish_many_now, messages) == 200
        assert len(sent) == 1  # one pipeline, one connection, one round trip
        assert [(await received_on(layer, first))["n"] for _ in range(101)] == [
            0,
            *range(0, 200, 2),
        ]
        assert [(await received_on(layer, second))["n"] for _ in range(100)] == list(
            range(1, 200, 2)
        )
    finally:
        layer.close_publisher()
        await layer.flush()


async def test_a_thread_publishes_again_after_redis_closed_its_connection():
    import redis

    url = require_redis()
    layer = BoundedRedisPubSubChannelLayer(hosts=[{"address": url}])
    channel = await layer.new_channel()
    await layer.group_add("after.a.restart", channel)
    try:
        sent = [("after.a.restart", {"type": "x", "n": 1})]
        assert await asyncio.to_thread(layer.publish_many_now, sent) == 1
        assert (await received_on(layer, channel))["n"] == 1
        [client] = layer._publisher.clients
        assert len(client.connection_pool._available_connections) == 1
        pooled = client.client_id()  # the id of the one pooled connection
        killer = redis.Redis.from_url(url)
        assert killer.client_kill_filter(_id=pooled) == 1  # as a restart would
        killer.close()
        sent = [("after.a.restart", {"type": "x", "n": 2})]
        assert await asyncio.to_thread(layer.publish_many_now, sent) == 1
        assert (await received_on(layer, channel))["n"] == 2
    finally:
        layer.close_publisher()
        await layer.flush()


def test_a_stalled_redis_holds_a_publishing_thread_once_per_pause(monkeypatch):
    """A Redis that accepts connections and never answers: the first publish
    waits PUBLISH_TIMEOUT, those during the pause that follows return at once."""
    import socket

    from realtime.patches import channels_redis

    monkeypatch.setattr(channels_redis, "PUBLISH_TIMEOUT", 0.3)
    monkeypatch.setattr(channels_redis, "PUBLISH_PAUSE", 60)
    stalled = socket.create_server(("127.0.0.1", 0), backlog=8)
    try:
        port = stalled.getsockname()[1]
        layer = BoundedRedisPubSubChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{port}"}])
        began = time.monotonic()
        assert layer.publish_many_now([("stalled", {"type": "x"})]) == 0
        first = time.monotonic() - began
        # One retry, at once: two timeouts at most, never redis-py's backoff.
        assert 0.3 <= first < 0.3 * 2 + 0.5
        began = time.monotonic()
        for _ in range(100):
            assert layer.publish_many_now([("stalled", {"type": "x"})]) == 0
        assert time.monotonic() - began < 0.1
        assert layer._publisher.dropped == 101
        layer.close_publisher()
    finally:
        stalled.close()
