"""One channel-layer subscription per execution group per event loop, shared by its sockets.

Channels gives every consumer a channel of its own on the layer, with a
queue and a task waiting on it, and, on Redis, a SUBSCRIBE of its own; this
service never sends to a consumer's own channel, only to groups. So the
sockets of one event loop join an execution's group here instead: the first
one has the layer call this loop's listener with each message sent to the
group (``group_listen``: no channel, queue or task per group), which hands
it to every local member in the order received; the last one to leave stops
listening. What a member does with a message must not wait
(``ExecutionSubscription.deliver`` queues it and starts a sending task), so a
slow socket holds back no other.
"""

import asyncio
import logging
import weakref
from typing import Protocol

from channels.layers import get_channel_layer

from realtime.languages import unspoken

logger = logging.getLogger(__name__)


class Member(Protocol):
    def deliver(self, message: dict) -> None: ...


class GroupSubscription:
    """A group the layer calls this loop about, and the loop's members of it."""

    __slots__ = ("members", "ready")

    def __init__(self) -> None:
        # Most groups have one member: a list is a third of a set's size.
        self.members: list[Member] = []
        # Resolved once the layer routes the group's messages to this loop;
        # None from then on.
        self.ready: asyncio.Future | None = asyncio.get_running_loop().create_future()

    def __call__(self, message: dict) -> None:
        """The layer's call with a message of the group: hand it to every member."""
        for member in tuple(self.members):
            try:
                member.deliver(message)
            except Exception:
                logger.exception("A socket failed to take a message of its group")


class GroupFanout:
    """The running loop's group subscriptions (``fanout()``); not thread-safe, as the layer."""

    def __init__(self) -> None:
        self.groups: dict[str, GroupSubscription] = {}
        self._listening: set[asyncio.Task] = set()

    async def join(self, group: str, member: Member) -> None:
        """Hand ``member`` every message sent to ``group`` from when this returns on."""
        subscription = self.groups.get(group)
        if subscription is None:
            subscription = self.groups[group] = GroupSubscription()
            task = asyncio.get_running_loop().create_task(
                self._listen(group, subscription), context=unspoken()
            )
            self._listening.add(task)
            task.add_done_callback(self._listening.discard)
        if member not in subscription.members:
            subscription.members.append(member)
        if subscription.ready is None:
            return
        try:
            await asyncio.shield(subscription.ready)
        except BaseException:
            await self.leave(group, member)
            raise

    async def leave(self, group: str, member: Member) -> None:
        """Stop handing ``member`` the group's messages; the last member stops listening."""
        subscription = self.groups.get(group)
        if subscription is None or member not in subscription.members:
            return
        subscription.members.remove(member)
        if subscription.members:
            return
        del self.groups[group]
        if subscription.ready is None:  # listening; else ``_listen`` ends it
            await self._unlisten(group, subscription)

    async def _listen(self, group: str, subscription: GroupSubscription) -> None:
        try:
            await get_channel_layer().group_listen(group, subscription)
        except BaseException as error:
            if self.groups.get(group) is subscription:
                del self.groups[group]  # failed: the next join subscribes anew
            if isinstance(error, Exception):
                logger.warning("The subscription to %s failed", group, exc_info=True)
                subscription.ready.set_exception(error)
            else:
                subscription.ready.cancel()
                raise
            return
        subscription.ready.set_result(None)
        subscription.ready = None
        if self.groups.get(group) is not subscription:
            # Every member left while the layer subscribed.
            await self._unlisten(group, subscription)

    @staticmethod
    async def _unlisten(group: str, subscription: GroupSubscription) -> None:
        try:
            await get_channel_layer().group_unlisten(group, subscription)
        except Exception:
            logger.warning("Could not leave %s", group, exc_info=True)


_fanouts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupFanout]" = (
    weakref.WeakKeyDictionary()
)


def fanout() -> GroupFanout:
    """The group subscriptions of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _fanouts:
        _fanouts[loop] = GroupFanout()
    return _fanouts[loop]
