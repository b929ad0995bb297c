import asyncio

from rest_framework import serializers

from executions.engine.fields import StrictFloatField
from executions.engine.registry import NodeType, register


class DelayParams(serializers.Serializer):
    seconds = StrictFloatField(min_value=0, max_value=3600)


@register
class Delay(NodeType):
    """Waits ``seconds`` (fractions allowed) without holding a thread; passes its input on."""

    type_name = "delay"
    params_serializer = DelayParams

    async def run(self, ctx, params, data):
        await asyncio.sleep(params["seconds"])
        return data
