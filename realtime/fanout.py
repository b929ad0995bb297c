"""One channel-layer subscription per execution group per event loop, shared by its sockets.

Channels gives every consumer a channel of its own on the layer, with a
queue and a task waiting on it, and, on Redis, a SUBSCRIBE of its own; this
service never sends to a consumer's own channel, only to groups. So the
sockets of one event loop join an execution's group here instead: the first
one subscribes a channel of this loop's to the group on the layer, one task
receives that channel's messages and hands each to every local member, in
the order received; the last one to leave unsubscribes it. What a member
does with a message must not wait (``ExecutionConsumer.deliver`` queues it
and starts a sending task), so a slow socket holds back no other.
"""

import asyncio
import logging
import weakref
from typing import Protocol

from channels.layers import get_channel_layer

from realtime.layers import LocalChannelLayer

logger = logging.getLogger(__name__)


class Member(Protocol):
    def deliver(self, message: dict) -> None: ...


class GroupSubscription:
    """A group's channel on the layer, the task receiving it, and the loop's members."""

    __slots__ = ("members", "ready", "task")

    def __init__(self) -> None:
        self.members: set[Member] = set()
        # Resolved once the layer routes the group's messages to this loop.
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task | None = None


class GroupFanout:
    """The running loop's group subscriptions (``fanout()``); not thread-safe, as the layer."""

    def __init__(self) -> None:
        self.groups: dict[str, GroupSubscription] = {}

    async def join(self, group: str, member: Member) -> None:
        """Hand ``member`` every message sent to ``group`` from when this returns on."""
        subscription = self.groups.get(group)
        if subscription is None:
            subscription = self.groups[group] = GroupSubscription()
            subscription.task = asyncio.get_running_loop().create_task(
                self._receive(group, subscription)
            )
        subscription.members.add(member)
        try:
            await asyncio.shield(subscription.ready)
        except BaseException:
            await self.leave(group, member)
            raise

    async def leave(self, group: str, member: Member) -> None:
        """Stop handing ``member`` the group's messages; the last member unsubscribes."""
        subscription = self.groups.get(group)
        if subscription is None or member not in subscription.members:
            return
        subscription.members.discard(member)
        if subscription.members:
            return
        del self.groups[group]
        subscription.task.cancel()
        await asyncio.gather(subscription.task, return_exceptions=True)

    async def _receive(self, group: str, subscription: GroupSubscription) -> None:
        layer = get_channel_layer()
        channel = None
        try:
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
            subscription.ready.set_result(None)
            while True:
                message = await layer.receive(channel)
                for member in list(subscription.members):
                    self._hand(member, message)
        except BaseException as error:
            if not subscription.ready.done():
                if isinstance(error, Exception):
                    subscription.ready.set_exception(error)
                else:
                    subscription.ready.cancel()
            if self.groups.get(group) is subscription:
                del self.groups[group]  # failed: the next join subscribes anew
            if not isinstance(error, Exception):
                raise
            logger.warning("The subscription to %s failed", group, exc_info=True)
        finally:
            if channel is not None:
                await self._unsubscribe(layer, group, channel)

    @staticmethod
    def _hand(member: Member, message: dict) -> None:
        try:
            member.deliver(message)
        except Exception:
            logger.exception("A socket failed to take a message of its group")

    @staticmethod
    async def _unsubscribe(layer, group: str, channel: str) -> None:
        try:
            await layer.group_discard(group, channel)
        except Exception:
            logger.warning("Could not leave %s", group, exc_info=True)
        if isinstance(layer, LocalChannelLayer):
            layer.forget_channel(channel)


_fanouts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupFanout]" = (
    weakref.WeakKeyDictionary()
)


def fanout() -> GroupFanout:
    """The group subscriptions of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _fanouts:
        _fanouts[loop] = GroupFanout()
    return _fanouts[loop]
