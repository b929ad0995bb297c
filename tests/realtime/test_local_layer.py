"""The single-process channel layer."""

import asyncio
import time

import pytest

from realtime.layers import LocalChannelLayer


async def test_every_group_member_gets_each_message_in_order():
    layer = LocalChannelLayer(capacity=100)
    members = [await layer.new_channel() for _ in range(3)]
    for channel in members:
        await layer.group_add("run", channel)
    outsider = await layer.new_channel()
    await layer.send(outsider, {"type": "direct"})
    for n in range(5):
        await layer.group_send("run", {"type": "x", "n": n})
    for channel in members:
        assert [(await layer.receive(channel))["n"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert await layer.receive(outsider) == {"type": "direct"}
    await layer.group_discard("run", members[0])
    await layer.group_send("run", {"type": "x", "n": 5})
    assert members[0] not in layer.channels
    assert (await layer.receive(members[1]))["n"] == 5


async def test_members_get_a_copy_the_sender_cannot_change():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("run", channel)
    message = {"type": "x", "event": {"seq": 1}}
    await layer.group_send("run", message)
    message["event"]["seq"] = 2
    assert (await layer.receive(channel))["event"] == {"seq": 1}


async def test_a_full_queue_drops_its_oldest_message():
    layer = LocalChannelLayer(capacity=3)
    channel = await layer.new_channel()
    await layer.group_add("run", channel)
    for n in range(10):
        await layer.group_send("run", {"type": "x", "n": n})
    assert [(await layer.receive(channel))["n"] for _ in range(3)] == [7, 8, 9]


def later(monkeypatch, seconds: float) -> None:
    """Let the wall clock (message and membership times) read ``seconds`` ahead."""
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + seconds)


async def test_expired_messages_are_dropped_at_most_once_a_second_and_memberships_stay(
    monkeypatch,
):
    layer = LocalChannelLayer(expiry=60)
    slow, fresh = await layer.new_channel(), await layer.new_channel()
    for channel in (slow, fresh):
        await layer.group_add("run", channel)
    await layer.group_send("run", {"type": "x", "n": 1})
    await layer.receive(fresh)
    # The slow channel has not read its message yet; a minute later it has expired.
    later(monkeypatch, 61)
    await layer.group_send("run", {"type": "x", "n": 2})
    # Cleaned less than a second ago: nothing is walked yet.
    assert layer.channels[slow].qsize() == 2
    layer._expired_at -= layer.expiry_interval
    await layer.group_send("run", {"type": "x", "n": 3})
    # 1 was dropped; the slow reader is still a member and gets everything after it.
    assert set(layer.groups["run"]) == {slow, fresh}
    assert [(await layer.receive(slow))["n"] for _ in range(2)] == [2, 3]
    assert [(await layer.receive(fresh))["n"] for _ in range(2)] == [2, 3]


async def test_a_membership_older_than_the_group_expiry_stays(monkeypatch):
    layer = LocalChannelLayer(expiry=1, group_expiry=1)
    channel = await layer.new_channel()
    await layer.group_add("run", channel)
    later(monkeypatch, 10)
    layer._expired_at -= layer.expiry_interval
    await layer.group_send("run", {"type": "x", "n": 1})
    assert channel in layer.groups["run"]
    assert (await layer.receive(channel))["n"] == 1


async def test_a_queue_emptied_by_expiry_is_dropped_unless_someone_waits_on_it(monkeypatch):
    layer = LocalChannelLayer(expiry=1)
    waiting, gone = await layer.new_channel(), await layer.new_channel()
    for channel in (waiting, gone):
        await layer.group_add("run", channel)
    await layer.group_send("run", {"type": "x", "n": 1})
    await layer.receive(waiting)
    receiver = asyncio.ensure_future(layer.receive(waiting))
    await asyncio.sleep(0)  # the receiver waits on its (empty) queue
    later(monkeypatch, 10)
    layer._expired_at -= layer.expiry_interval
    layer._clean_expired()  # 1 expired for the other channel
    assert gone not in layer.channels
    await layer.group_send("run", {"type": "x", "n": 2})
    assert (await asyncio.wait_for(receiver, 5))["n"] == 2
    assert (await asyncio.wait_for(layer.receive(gone), 5))["n"] == 2


async def test_a_forgotten_channel_keeps_nothing():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "x"})
    layer.forget_channel(channel)
    assert channel not in layer.channels


@pytest.mark.parametrize("name", ["bad name!", "x" * 200])
async def test_invalid_group_names_are_refused(name):
    layer = LocalChannelLayer()
    with pytest.raises(TypeError):
        await layer.group_send(name, {"type": "x"})
