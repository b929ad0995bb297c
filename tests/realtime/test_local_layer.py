"""The single-process channel layer."""

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


async def test_expired_messages_and_their_channels_are_cleaned_at_most_once_a_second(
    monkeypatch,
):
    layer = LocalChannelLayer(expiry=60)
    stale, fresh = await layer.new_channel(), await layer.new_channel()
    for channel in (stale, fresh):
        await layer.group_add("run", channel)
    await layer.group_send("run", {"type": "x", "n": 1})
    await layer.receive(fresh)
    # The stale channel never read its message; a minute later it has expired.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    await layer.group_send("run", {"type": "x", "n": 2})
    # Cleaned less than a second ago: nothing is walked yet.
    assert stale in layer.groups["run"]
    layer._expired_at -= layer.expiry_interval
    await layer.group_send("run", {"type": "x", "n": 3})
    assert stale not in layer.groups["run"]
    assert [(await layer.receive(fresh))["n"] for _ in range(2)] == [2, 3]


@pytest.mark.parametrize("name", ["bad name!", "x" * 200])
async def test_invalid_group_names_are_refused(name):
    layer = LocalChannelLayer()
    with pytest.raises(TypeError):
        await layer.group_send(name, {"type": "x"})
