"""What a server measures of its sockets: where they open, send, fall behind and close."""

import asyncio
import time
from types import SimpleNamespace

import pytest
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from executions import services
from realtime.handshakes import HandshakeRateLimit
from realtime.layers import (
    BoundedRedisPubSubChannelLayer,
    DroppingQueue,
    LocalChannelLayer,
    ThreadPublisher,
)
from realtime.patches import send_buffers
from realtime.subscription import INBOX_SIZE, ExecutionSubscription
from tests.realtime.helpers import (
    Publisher,
    bearer,
    open_socket,
    path_for,
    receive,
    receive_refusal,
    receive_until_close,
    record,
)

pytestmark = pytest.mark.django_db(transaction=True)


class Samples:
    """Metric samples as they were when made, and how much each moved since."""

    def __init__(self, *wanted: tuple[str, dict]):
        self.wanted = wanted
        self.before = {key: self.value(*key) for key in self.keys()}

    def keys(self):
        return [(name, tuple(sorted(labels.items()))) for name, labels in self.wanted]

    @staticmethod
    def value(name: str, labels: tuple) -> float:
        return REGISTRY.get_sample_value(name, dict(labels)) or 0.0

    def moved(self) -> dict[str, float]:
        """Each sample's change, by name and its labels' values."""
        return {
            f"{name}{[v for _, v in labels]}": self.value(name, labels)
            - self.before[(name, labels)]
            for name, labels in self.keys()
        }


WS = {"transport": "websocket"}


async def test_a_followed_execution_counts_its_socket_messages_and_live_latencies(
    held_execution, token
):
    samples = Samples(
        ("workflows_socket_connects_total", WS),
        ("workflows_socket_closes_total", {**WS, "code": "1000"}),
        ("workflows_messages_sent_total", {**WS, "type": "status"}),
        ("workflows_messages_sent_total", {**WS, "type": "log"}),
        ("workflows_push_latency_seconds_count", {"terminal": "false"}),
        ("workflows_push_latency_seconds_count", {"terminal": "true"}),
    )
    gauges = Samples(
        ("workflows_sockets_open", WS), ("workflows_subscriptions", {"kind": "execution"})
    )
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        await receive(socket)  # the snapshot: not a live event
        assert set(gauges.moved().values()) == {1.0}
        await record(services.execution_start, execution_id=execution_id)
        await record(services.execution_complete, execution_id=execution_id, result=1)
        messages, code = await receive_until_close(socket)

    assert code == 1000
    assert [m["type"] for m in messages] == ["log", "status", "status"]
    assert samples.moved() == {
        "workflows_socket_connects_total['websocket']": 1.0,
        "workflows_socket_closes_total['1000', 'websocket']": 1.0,
        "workflows_messages_sent_total['websocket', 'status']": 3.0,
        "workflows_messages_sent_total['websocket', 'log']": 1.0,
        "workflows_push_latency_seconds_count['false']": 2.0,
        "workflows_push_latency_seconds_count['true']": 1.0,
    }
    assert set(gauges.moved().values()) == {0.0}


async def test_a_resume_is_not_counted_as_live(held_execution, token):
    samples = Samples(("workflows_push_latency_seconds_count", {"terminal": "false"}))
    await record(services.execution_start, execution_id=held_execution.id)
    async with open_socket(path_for(held_execution.id, "last_seq=0"), bearer(token)) as socket:
        assert [(await receive(socket))["seq"] for _ in range(3)] == [1, 2, 3]
    assert samples.moved() == {"workflows_push_latency_seconds_count['false']": 0.0}


async def test_refused_handshakes_are_counted_by_reason_and_never_as_sockets(user, token):
    samples = Samples(
        ("workflows_socket_handshakes_refused_total", {**WS, "reason": "unauthenticated"}),
        ("workflows_socket_handshakes_refused_total", {**WS, "reason": "not_found"}),
        ("workflows_socket_connects_total", WS),
    )
    async with open_socket(path_for("00000000-0000-0000-0000-000000000000")) as socket:
        assert (await receive_refusal(socket))[1] == 4401
    missing = path_for("00000000-0000-0000-0000-000000000000")
    async with open_socket(missing, bearer(token)) as socket:
        assert (await receive_refusal(socket))[1] == 4404
    assert samples.moved() == {
        "workflows_socket_handshakes_refused_total['unauthenticated', 'websocket']": 1.0,
        "workflows_socket_handshakes_refused_total['not_found', 'websocket']": 1.0,
        "workflows_socket_connects_total['websocket']": 0.0,
    }


async def test_handshakes_over_the_rate_are_counted(settings):
    settings.REALTIME_HANDSHAKE_RATE = "1/minute"
    samples = Samples(
        ("workflows_socket_handshakes_refused_total", {**WS, "reason": "rate_limited"})
    )

    async def accepting(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})

    limited = HandshakeRateLimit(accepting)
    for _ in range(2):
        socket = WebsocketCommunicator(limited, "/api/v1/ws")
        assert (await socket.connect())[0]
        await socket.disconnect()
    assert samples.moved() == {
        "workflows_socket_handshakes_refused_total['rate_limited', 'websocket']": 1.0
    }


async def test_a_gap_in_the_live_events_is_counted_as_it_is_filled(
    held_execution, token, monkeypatch, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 600  # only the gap fill can recover it
    Publisher(monkeypatch, drop=lambda event: event["seq"] == 4)
    samples = Samples(("workflows_gap_fills_total", {}))
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        await receive(socket)
        await record(services.execution_start, execution_id=execution_id)
        await record(services.execution_progress, execution_id=execution_id, message="lost")
        await record(services.execution_progress, execution_id=execution_id, message="found")
        assert [(await receive(socket))["seq"] for _ in range(4)] == [2, 3, 4, 5]
    assert samples.moved() == {"workflows_gap_fills_total[]": 1.0}


async def test_a_lost_terminal_event_is_counted_as_the_watchdog_catches_up(
    held_execution, token, monkeypatch, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 0.05
    Publisher(monkeypatch, drop=lambda event: event.get("status") == "completed")
    samples = Samples(
        ("workflows_watchdog_catch_ups_total", {}),
        ("workflows_push_latency_seconds_count", {"terminal": "true"}),
    )
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        await receive(socket)
        await record(services.execution_complete, execution_id=execution_id, result=None)
        messages, code = await receive_until_close(socket)
    assert [m["status"] for m in messages] == ["completed"] and code == 1000
    assert samples.moved() == {
        "workflows_watchdog_catch_ups_total[]": 1.0,
        "workflows_push_latency_seconds_count['true']": 1.0,
    }


async def test_messages_dropped_on_their_way_are_counted_by_reason():
    samples = Samples(
        *[
            ("workflows_channel_layer_drops_total", {"reason": reason})
            for reason in ("queue_full", "expired", "publish_failed", "inbox_full")
        ]
    )
    queue = DroppingQueue(maxsize=1)
    queue.put_nowait(1)
    queue.put_nowait(2)

    layer = LocalChannelLayer(expiry=0)
    await layer.send("socket.x", {"type": "m"})
    time.sleep(0.01)
    layer._clean_expired()

    publisher = ThreadPublisher(BoundedRedisPubSubChannelLayer(hosts=["redis://127.0.0.1:1/0"]))
    publisher.paused_until = time.monotonic() + 60  # Redis failed a moment ago
    assert publisher.publish_many([("execution.x", {"type": "m"})] * 3) == 0

    subscription = ExecutionSubscription(SimpleNamespace(ending=False), "x", None)
    for seq in range(1, INBOX_SIZE + 2):
        subscription.deliver({"type": "execution.event", "event": {"seq": seq}})

    assert samples.moved() == {
        "workflows_channel_layer_drops_total['queue_full']": 1.0,
        "workflows_channel_layer_drops_total['expired']": 1.0,
        "workflows_channel_layer_drops_total['publish_failed']": 3.0,
        "workflows_channel_layer_drops_total['inbox_full']": 1.0,
    }


async def test_a_reader_that_stops_is_counted_as_it_stalls_and_as_it_is_closed(settings):
    settings.REALTIME_SEND_BUFFER_BYTES = 10
    settings.REALTIME_SEND_TIMEOUT = 0.05
    samples = Samples(
        ("workflows_send_buffer_stalls_total", WS),
        ("workflows_slow_reader_closes_total", WS),
        ("workflows_slow_reader_closes_total", {"transport": "sse"}),
    )
    full = SimpleNamespace(dataBuffer=b"x" * 100, offset=0)  # no kernel queue to read
    cut = []
    kept_up = await send_buffers.reader_keeps_up(
        SimpleNamespace(),
        full,
        1,
        is_open=lambda: True,
        cut_off=lambda pending, limit: cut.append(pending),
        kind="websocket",
    )
    assert not kept_up and cut == [100]

    from daphne.ws_protocol import WebSocketProtocol

    protocol = WebSocketProtocol()
    protocol.serverSend = lambda data, binary: None
    protocol.sendClose = lambda code: None
    send_buffers.close_slow_consumer(protocol, pending=100, limit=10)
    stream = SimpleNamespace(transport=None, write=lambda data: None, finish=lambda: None)
    send_buffers.end_slow_stream(stream, pending=100, limit=10)

    assert samples.moved() == {
        "workflows_send_buffer_stalls_total['websocket']": 1.0,
        "workflows_slow_reader_closes_total['websocket']": 1.0,
        "workflows_slow_reader_closes_total['sse']": 1.0,
    }


async def test_with_metrics_off_a_socket_is_not_counted(held_execution, token, settings):
    settings.METRICS_ENABLED = False
    samples = Samples(
        ("workflows_socket_connects_total", WS),
        ("workflows_messages_sent_total", {**WS, "type": "pong"}),
        ("workflows_sockets_open", WS),
    )
    async with open_socket(path_for(held_execution.id), bearer(token)) as socket:
        await receive(socket)
        await socket.send_json_to({"type": "ping"})
        assert await receive(socket) == {"type": "pong"}
        settings.METRICS_ENABLED = True  # what was not counted is not taken back either
    await asyncio.sleep(0)
    assert set(samples.moved().values()) == {0.0}
