"""The framework's floor: a bare Channels consumer that forwards ``group_send``.

``daphne bench.bare:application`` serves ``/bare/{group}`` (join a group,
forward its messages) and ``/publish?groups=G&rate=R&count=N`` (publish N
messages to each of G groups, R per second per group, each stamped with its
send time). It uses the project's channel layer settings, so the same
in-memory or Redis layer is measured.
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
        groups, rate, count = (
            int(query["groups"][0]),
            float(query["rate"][0]),
            int(query["count"][0]),
        )
        self.task = asyncio.create_task(self.publish(groups, rate, count))

    async def publish(self, groups: int, rate: float, count: int) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        # Spread the groups evenly across each interval, as executions would be.
        slots = [(n * groups + g, g) for n in range(count) for g in range(groups)]
        for slot, group in slots:
            await asyncio.sleep(max(0.0, start + slot / (rate * groups) - loop.time()))
            text = json.dumps({"seq": slot // groups + 1, "timestamp": now_stamp()})
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
