"""The sockets of one event loop share one layer subscription per group."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from realtime.fanout import GroupFanout


def listeners(layer, group: str) -> list:
    """The listener of ``group`` in this process, for the in-memory or the Redis layer."""
    if hasattr(layer, "_get_layer"):  # Redis pub/sub: the running loop's layer, by its name
        loop_layer = layer._get_layer()
        name = loop_layer._get_group_channel_name(group)
        listener = loop_layer.listeners.get(name)
        subscribed = name in loop_layer._get_shard(name)._subscribed_to
        assert subscribed == (listener is not None), "subscribed in Redis without a listener"
    else:
        listener = layer.listeners.get(group)
    return [] if listener is None else [listener]


class Member:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.got_two = asyncio.Event()

    def deliver(self, message: dict) -> None:
        self.messages.append(message)
        if len(self.messages) == 2:
            self.got_two.set()


async def test_members_share_one_channel_and_get_every_message_in_order():
    layer = get_channel_layer()
    fanout = GroupFanout()
    first, second = Member(), Member()
    await fanout.join("execution.shared", first)
    await fanout.join("execution.shared", second)
    assert len(listeners(layer, "execution.shared")) == 1
    for seq in (1, 2):
        await layer.group_send("execution.shared", {"type": "execution.event", "seq": seq})
    await asyncio.wait_for(second.got_two.wait(), 5)
    assert [m["seq"] for m in first.messages] == [1, 2] == [m["seq"] for m in second.messages]
    await fanout.leave("execution.shared", first)
    assert len(listeners(layer, "execution.shared")) == 1
    await fanout.leave("execution.shared", second)
    assert not listeners(layer, "execution.shared")
    assert fanout.groups == {}


async def test_a_failed_subscription_fails_the_join_and_the_next_join_tries_again(monkeypatch):
    layer = get_channel_layer()
    fanout = GroupFanout()
    original = layer.group_listen

    async def failing(group, listener):
        raise ConnectionError("layer down")

    monkeypatch.setattr(layer, "group_listen", failing)
    with pytest.raises(ConnectionError):
        await fanout.join("execution.flaky", Member())
    assert fanout.groups == {}
    monkeypatch.setattr(layer, "group_listen", original)
    member = Member()
    await fanout.join("execution.flaky", member)
    assert len(listeners(layer, "execution.flaky")) == 1
    await fanout.leave("execution.flaky", member)
    assert not listeners(layer, "execution.flaky")


async def test_a_channel_leaving_the_group_leaves_the_listener_subscribed():
    """A consumer with a channel of its own (Channels' usual way) and the loop's
    listener share the group's subscription; either may go first."""
    layer = get_channel_layer()
    fanout, member = GroupFanout(), Member()
    channel = await layer.new_channel()
    await layer.group_add("execution.mixed", channel)
    await fanout.join("execution.mixed", member)
    await layer.group_discard("execution.mixed", channel)
    for seq in (1, 2):
        await layer.group_send("execution.mixed", {"type": "execution.event", "seq": seq})
    await asyncio.wait_for(member.got_two.wait(), 5)
    assert [m["seq"] for m in member.messages] == [1, 2]
    await fanout.leave("execution.mixed", member)
    assert not listeners(layer, "execution.mixed")


async def test_a_member_leaving_while_the_layer_subscribes_leaves_nothing_behind():
    layer = get_channel_layer()
    fanout, member = GroupFanout(), Member()
    joining = asyncio.create_task(fanout.join("execution.brief", member))
    await asyncio.sleep(0)
    await fanout.leave("execution.brief", member)
    await joining
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert fanout.groups == {}
    assert not listeners(layer, "execution.brief")
