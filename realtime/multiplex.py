"""``/api/v1/ws``: one socket for the streams of many executions.

The client subscribes and unsubscribes; each subscription is exactly what
``/api/v1/ws/executions/{id}`` would send for its execution (every message
carries its ``execution_id``, ``seq`` and ``timestamp``), with the same
guarantees, from the same ``ExecutionSubscription``. Where that socket would
close, a subscription ends with a message instead, and the socket and its
other subscriptions carry on:

* ``{"type": "unsubscribed", "execution_id": ID, "reason": "ended"}`` after
  the terminal event, ``"requested"`` after an ``unsubscribe``;
* ``{"type": "error", "execution_id": ID, "code": C, "message": ...}`` when a
  subscription is refused or stops: 4400 (malformed request, bad
  ``last_seq``), 4404 (not found or not visible), 4429 (too many
  subscriptions), 4403 (no longer visible), 1013 or 1011 (the server could not
  go on: subscribe again with ``last_seq``).

The executions feed (``realtime.feeds``) is subscribed to with
``{"type": "subscribe", "feed": "executions", "filter": {...}, "cursor": C}``
and sends ``execution`` messages; its errors and ``unsubscribed`` name the
``feed`` instead of an execution. A socket has at most one, and subscribing
again replaces its filter and cursor.

The socket as a whole has the per-execution socket's authentication,
inbound limits, pings, idle rule and close codes.
"""

import uuid

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from executions.feed import feed_filter
from realtime.consumers import SocketConsumer, parse_last_seq_value
from realtime.feeds import EXECUTIONS_FEED, FeedSubscription
from realtime.languages import text_for
from realtime.subscription import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    NOT_FOUND,
    ExecutionSubscription,
)

CLOSE_TOO_MANY_SUBSCRIPTIONS = 4429

ENDED = "ended"
REQUESTED = "requested"
REVOKED = gettext_lazy("You may no longer see this execution: its subscription ended.")


def unsubscribed_message(execution_id, reason: str) -> dict:
    return {"type": "unsubscribed", "execution_id": str(execution_id), "reason": reason}


def subscription_error(execution_id, code: int, text: str) -> dict:
    return {
        "type": "error",
        "execution_id": None if execution_id is None else str(execution_id),
        "code": code,
        "message": str(text),
    }


def feed_error(name, code: int, text: str) -> dict:
    return {"type": "error", "feed": name, "code": code, "message": str(text)}


def unknown_feed(name) -> dict:
    """The error for a feed name that is not ``executions`` (named as given, if a string)."""
    shown = name[:100] if isinstance(name, str) else None
    return feed_error(
        shown,
        CLOSE_BAD_REQUEST,
        _("Unknown feed; the feed is %(feed)s.") % {"feed": repr(EXECUTIONS_FEED)},
    )


def feed_unsubscribed(reason: str) -> dict:
    return {"type": "unsubscribed", "feed": EXECUTIONS_FEED, "reason": reason}


class MultiplexConsumer(SocketConsumer):
    accepted_types = gettext_lazy("'ping', 'subscribe' or 'unsubscribe'")
    streams: dict | None = None
    feed: FeedSubscription | None = None

    def subscriptions(self):
        return () if not self.streams else self.streams.values()

    async def connect(self) -> None:
        if await self.open_socket():
            await self.admit()

    def is_subscribe(self, content) -> bool:
        return isinstance(content, dict) and content.get("type") in ("subscribe", "unsubscribe")

    async def receive_request(self, kind: str, content: dict) -> bool:
        if kind == "subscribe":
            await self.subscribe(content)
        elif kind == "unsubscribe":
            await self.unsubscribe(content)
        else:
            return False
        return True

    def subscription_count(self) -> int:
        return len(self.streams or ()) + (self.feed is not None)

    def too_many(self) -> str | None:
        limit = settings.REALTIME_MAX_SUBSCRIPTIONS
        if self.subscription_count() < limit:
            return None
        return _(
            "Too many subscriptions: at most %(limit)d at once on one socket "
            "(REALTIME_MAX_SUBSCRIPTIONS). Unsubscribe from some first."
        ) % {"limit": limit}

    async def subscribe(self, content: dict) -> None:
        if "feed" in content:
            return await self.subscribe_feed(content)
        execution_id, problem = parse_execution_id(content)
        if problem is not None:
            return await self.send_json(subscription_error(*problem))
        resume_from, problem = parse_last_seq_value(content.get("last_seq"))
        if problem is not None:
            return await self.send_json(
                subscription_error(execution_id, CLOSE_BAD_REQUEST, problem)
            )
        if self.streams is None:
            self.streams = {}
        current = self.streams.get(execution_id)
        if current is not None and not current.finished:
            return  # subscribed already: nothing changes
        too_many = self.too_many()
        if too_many is not None:
            return await self.send_json(
                subscription_error(execution_id, CLOSE_TOO_MANY_SUBSCRIPTIONS, too_many)
            )
        subscription = self.streams[execution_id] = ExecutionSubscription(
            self, execution_id, resume_from
        )
        execution = await subscription.open(self.scope["user"])
        if execution is not None and not subscription.ending:
            subscription.start(execution)

    async def unsubscribe(self, content: dict) -> None:
        if "feed" in content:
            return await self.unsubscribe_feed(content)
        execution_id, problem = parse_execution_id(content)
        if problem is not None:
            return await self.send_json(subscription_error(*problem))
        subscription = (self.streams or {}).get(execution_id)
        if subscription is None or subscription.finished:
            return await self.send_json(unsubscribed_message(execution_id, REQUESTED))
        # What is being sent stops at the next event; nothing follows the message.
        subscription.finished = True
        self.spawn(self.unsubscribed(subscription))

    async def unsubscribed(self, subscription: ExecutionSubscription) -> None:
        async with subscription.lock:
            await self.end(subscription, unsubscribed_message(subscription.execution_id, REQUESTED))

    async def end(self, subscription: ExecutionSubscription, message: dict) -> None:
        """Send the subscription's last message and let it go."""
        if self.streams and self.streams.get(subscription.execution_id) is subscription:
            del self.streams[subscription.execution_id]
        await subscription.leave()
        if not self.ending:
            await self.send_json(message)

    # The executions feed

    async def subscribe_feed(self, content: dict) -> None:
        name = content.get("feed")
        if name != EXECUTIONS_FEED:
            return await self.send_json(unknown_feed(name))
        chosen, problem = feed_filter(content.get("filter") or {})
        cursor = content.get("cursor")
        if problem is None and cursor is not None and not isinstance(cursor, str):
            problem = _("The 'cursor' must be a string: the one of the last execution message.")
        if problem is not None:
            return await self.send_json(feed_error(name, CLOSE_BAD_REQUEST, problem))
        previous, self.feed = self.feed, None
        if previous is not None:
            await previous.leave()  # replaced by the new filter and cursor
        too_many = self.too_many()
        if too_many is not None:
            return await self.send_json(feed_error(name, CLOSE_TOO_MANY_SUBSCRIPTIONS, too_many))
        self.feed = FeedSubscription(self, chosen, cursor, self.scope["user"])
        await self.feed.open()

    async def feed_refused(self, feed: FeedSubscription, text: str) -> None:
        if self.feed is feed:
            self.feed = None
        await feed.leave()
        await self.send_json(feed_error(feed.name, CLOSE_BAD_REQUEST, text))

    async def unsubscribe_feed(self, content: dict) -> None:
        name = content.get("feed")
        if name != EXECUTIONS_FEED:
            return await self.send_json(unknown_feed(name))
        feed = self.feed
        if feed is None:
            return await self.send_json(feed_unsubscribed(REQUESTED))
        self.feed = None
        feed.finished = True  # what is being sent stops at the next execution
        self.spawn(self.feed_unsubscribed(feed))

    async def feed_unsubscribed(self, feed: FeedSubscription) -> None:
        async with feed.lock:
            await feed.leave()
            if not self.ending:
                await self.send_json(feed_unsubscribed(REQUESTED))

    async def release(self) -> None:
        await super().release()
        feed, self.feed = self.feed, None
        if feed is not None:
            await feed.leave()

    def observe_access(self, access, session) -> None:
        super().observe_access(access, session)
        if self.feed is not None and access is not None:
            self.feed.is_staff = access.is_staff

    def observe_heads(self, heads: dict) -> None:
        super().observe_heads(heads)
        if self.feed is not None:
            self.feed.wake()  # reads what a dropped announcement would have started

    # What a subscription's end means here: a message, and the socket carries on.

    async def subscription_refused(self, subscription, text: str, code: int) -> None:
        # From the watchdog's task too (``revoked``): in the socket's language.
        text = text_for(self.scope, text)
        await self.end(subscription, subscription_error(subscription.execution_id, code, text))

    async def subscription_ended(self, subscription) -> None:
        await self.end(subscription, unsubscribed_message(subscription.execution_id, ENDED))

    def subscription_failed(self, subscription, text: str, code: int) -> None:
        self.spawn(self.subscription_refused(subscription, text, code))

    def subscription_revoked(self, subscription, problem: str) -> None:
        if not subscription.ending:
            subscription.finished = True
            self.spawn(self.revoked(subscription))

    async def revoked(self, subscription) -> None:
        async with subscription.lock:
            await self.subscription_refused(subscription, REVOKED, CLOSE_FORBIDDEN)


def parse_execution_id(content: dict) -> tuple[uuid.UUID | None, tuple | None]:
    """``(id, None)``, or ``(None, (id as given, code, why))``."""
    raw = content.get("execution_id")
    if not isinstance(raw, str):
        return None, (None, CLOSE_BAD_REQUEST, _("'execution_id' must be a string."))
    try:
        return uuid.UUID(raw), None
    except ValueError:
        return None, (raw[:100], CLOSE_NOT_FOUND, NOT_FOUND)
