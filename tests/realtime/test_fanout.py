"""The sockets of one event loop share one layer subscription per group."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from realtime.fanout import GroupFanout


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
    assert len(layer.groups["execution.shared"]) == 1
    for seq in (1, 2):
        await layer.group_send("execution.shared", {"type": "execution.event", "seq": seq})
    await asyncio.wait_for(second.got_two.wait(), 5)
    assert [m["seq"] for m in first.messages] == [1, 2] == [m["seq"] for m in second.messages]
    await fanout.leave("execution.shared", first)
    assert len(layer.groups["execution.shared"]) == 1
    await fanout.leave("execution.shared", second)
    assert "execution.shared" not in layer.groups
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
    assert len(layer.groups["execution.flaky"]) == 1
    await fanout.leave("execution.flaky", member)
    assert "execution.flaky" not in layer.groups
