"""The sockets of one event loop share one layer subscription per group."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from realtime.fanout import GroupFanout


def members(layer, group: str) -> set:
    """The channels in ``group`` in this process, for the in-memory or the Redis layer."""
    if hasattr(layer, "_get_layer"):  # Redis pub/sub: the running loop's layer, by its name
        loop_layer = layer._get_layer()
        return loop_layer.groups.get(loop_layer._get_group_channel_name(group), set())
    return layer.groups.get(group, set())


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
    assert len(members(layer, "execution.shared")) == 1
    for seq in (1, 2):
        await layer.group_send("execution.shared", {"type": "execution.event", "seq": seq})
    await asyncio.wait_for(second.got_two.wait(), 5)
    assert [m["seq"] for m in first.messages] == [1, 2] == [m["seq"] for m in second.messages]
    await fanout.leave("execution.shared", first)
    assert len(members(layer, "execution.shared")) == 1
    await fanout.leave("execution.shared", second)
    assert not members(layer, "execution.shared")
    assert fanout.groups == {}


async def test_a_failed_subscription_fails_the_join_and_the_next_join_tries_again(monkeypatch):
    layer = get_channel_layer()
    fanout = GroupFanout()
    original = layer.group_add

    async def failing(group, channel):
        raise ConnectionError("layer down")

    monkeypatch.setattr(layer, "group_add", failing)
    with pytest.raises(ConnectionError):
        await fanout.join("execution.flaky", Member())
    assert fanout.groups == {}
    monkeypatch.setattr(layer, "group_add", original)
    member = Member()
    await fanout.join("execution.flaky", member)
    assert len(members(layer, "execution.flaky")) == 1
    await fanout.leave("execution.flaky", member)
    assert not members(layer, "execution.flaky")
