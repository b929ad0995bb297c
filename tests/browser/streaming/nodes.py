import asyncio

from rest_framework import serializers

from executions.engine.fields import StrictFloatField
from executions.engine.registry import NodeType, register


class StreamParams(serializers.Serializer):
    pieces = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False, allow_blank=True), max_length=100
    )
    pause = StrictFloatField(min_value=0, max_value=10)


@register
class Stream(NodeType):
    """Streams each of ``pieces`` to its ``output`` stream, ``pause`` seconds apart;
    passes its input on."""

    type_name = "test_stream"
    params_serializer = StreamParams

    async def run(self, ctx, params, data):
        for piece in params["pieces"]:
            await ctx.stream(piece, name="output")
            await asyncio.sleep(params["pause"])
        return data
