"""The framework's floor: a bare Channels consumer that forwards ``group_send``.

``daphne bench.bare:application`` serves ``/bare/{group}`` (join a group,
forward its messages) and ``/publish?groups=G&rate=R&count=N&stagger=S``:
the messages the service's load records, on the same schedule
(``bench.schedule``). To each of G groups, N ticks R per second, the
groups' first ticks spread over S seconds, then the two end messages right
after each group's last tick; each message is stamped with its send time. It
uses the project's channel layer settings, so the same in-memory or Redis
layer is measured.
"""

import asyncio
import json
import os
from datetime import UTC, datetime
from urllib.parse import parse_qs

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from bench.schedule import END_EVENTS, first_ticks  # noqa: E402


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BareConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = f"bare.{self.scope['url_route']['kwargs']['group']}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def bare_message(self, message):
        await self.send(text_data=message["text"])


class PublishConsumer(AsyncWebsocketConsumer):
    """Publishes while the socket is open; replies ``done`` when finished."""

    async def connect(self):
        await self.accept()
        query = parse_qs(self.scope["query_string"].decode())
        groups, rate, count, stagger = (
            int(query["groups"][0]),
            float(query["rate"][0]),
            int(query["count"][0]),
            float(query["stagger"][0]),
        )
        self.task = asyncio.create_task(self.publish(groups, rate, count, stagger))

    async def publish(self, groups: int, rate: float, count: int, stagger: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        interval = 1 / rate
        # (when, group, seq): each group's ticks, then its end messages at once.
        schedule = sorted(
            (first + min(n, count - 1) * interval, group, n + 1)
            for group, first in enumerate(first_ticks(groups, interval, stagger))
            for n in range(count + END_EVENTS)
        )
        for when, group, seq in schedule:
            await asyncio.sleep(max(0.0, start + when - loop.time()))
            text = json.dumps({"seq": seq, "timestamp": now_stamp()})
            await self.channel_layer.group_send(
                f"bare.{group}", {"type": "bare.message", "text": text}
            )
        await self.send(text_data="done")


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                re_path(r"^bare/(?P<group>\w+)$", BareConsumer.as_asgi()),
                re_path(r"^publish$", PublishConsumer.as_asgi()),
            ]
        )
    }
)
