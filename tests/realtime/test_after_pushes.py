"""``after_pushes``: what the in-process runner starts waits for the pushes
handed to this process's sockets before it, and never longer than its bound."""

import asyncio
import concurrent.futures
import threading
import time

import pytest
from channels.layers import InMemoryChannelLayer

from realtime import publish


@pytest.fixture
def consumer_loop(monkeypatch):
    """A running loop in a thread, bound as this process's consumer loop, and the
    in-memory layer (whatever the suite's), whose sends are handed to that loop."""
    layer = InMemoryChannelLayer()
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(publish, "_consumer_loop", loop)
    monkeypatch.setattr(publish, "_handing", None)
    yield loop
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def wait_for(condition, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def held_hand_over(monkeypatch) -> asyncio.Event:
    """Publish one message whose hand-over waits for the returned event."""
    release = asyncio.Event()

    async def handing_over(layer, messages):
        await release.wait()

    monkeypatch.setattr(publish, "_group_send_each", handing_over)
    publish.publish_many([("execution.a", {"type": "x"})])
    return release


def test_with_nothing_handed_over_it_calls_at_once(monkeypatch):
    monkeypatch.setattr(publish, "_handing", None)
    calls = []
    publish.after_pushes(lambda: calls.append("started"))
    assert calls == ["started"]


def test_it_waits_for_the_hand_over_and_the_sends_it_started(consumer_loop, monkeypatch):
    order: list[str] = []
    release = asyncio.Event()

    async def handing_over(layer, messages):
        await release.wait()
        # What a group's listener does with a message: send it from a task.
        asyncio.get_running_loop().create_task(sending(messages))

    async def sending(messages):
        order.extend(f"sent {group}" for group, _ in messages)

    monkeypatch.setattr(publish, "_group_send_each", handing_over)
    publish.publish_many([("execution.a", {"type": "x"}), ("execution.b", {"type": "x"})])
    publish.after_pushes(lambda: order.append("started"))
    time.sleep(0.1)
    assert order == []
    consumer_loop.call_soon_threadsafe(release.set)
    assert wait_for(lambda: "started" in order)
    assert order == ["sent execution.a", "sent execution.b", "started"]


def test_a_hand_over_the_loop_never_takes_delays_it_only_up_to_the_bound(
    consumer_loop, monkeypatch
):
    monkeypatch.setattr(publish, "AFTER_PUSHES_MAX_WAIT", 0.2)
    never = held_hand_over(monkeypatch)
    calls = []
    began = time.monotonic()
    publish.after_pushes(lambda: calls.append(time.monotonic() - began))
    assert wait_for(lambda: calls, 5)
    assert 0.15 <= calls[0] < 2
    consumer_loop.call_soon_threadsafe(never.set)  # now it is taken: not called again
    time.sleep(0.3)
    assert len(calls) == 1


def test_a_failing_call_is_logged_and_the_others_still_run(consumer_loop, monkeypatch, caplog):
    release = held_hand_over(monkeypatch)
    calls = []

    def failing():
        raise RuntimeError("boom")

    publish.after_pushes(failing)
    publish.after_pushes(lambda: calls.append("second"))
    consumer_loop.call_soon_threadsafe(release.set)
    assert wait_for(lambda: calls == ["second"])
    assert "Could not run" in caplog.text


def test_an_in_process_dispatch_starts_the_run_after_the_pushes(
    consumer_loop, monkeypatch, settings
):
    settings.EXECUTIONS_RUNNER = "inprocess"
    from executions.runners import get_runner, inprocess

    started = []
    monkeypatch.setattr(inprocess, "run_here", started.append)
    handing = concurrent.futures.Future()
    monkeypatch.setattr(publish, "_handing", handing)
    get_runner().dispatch("e1")
    assert started == []
    handing.set_result(None)
    assert started == ["e1"]


def test_a_hand_over_to_a_loop_that_stopped_holds_nothing(monkeypatch):
    stopped = asyncio.new_event_loop()
    monkeypatch.setattr(publish, "_consumer_loop", stopped)
    monkeypatch.setattr(publish, "_handing", concurrent.futures.Future())
    calls = []
    publish.after_pushes(lambda: calls.append("started"))
    assert calls == ["started"]
    stopped.close()


def test_binding_another_consumer_loop_forgets_the_last_one_s_hand_over(monkeypatch):
    monkeypatch.setattr(publish, "_consumer_loop", None)
    monkeypatch.setattr(publish, "_handing", concurrent.futures.Future())
    loop = asyncio.new_event_loop()
    publish.bind_consumer_loop(loop)
    assert publish._handing is None
    loop.close()
