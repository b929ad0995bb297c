import asyncio
import time

from rest_framework import serializers

from executions.engine.fields import StrictFloatField, StrictIntegerField
from executions.engine.registry import NodeType, register


class EmitParams(serializers.Serializer):
    count = StrictIntegerField(min_value=1, max_value=1_000_000)
    interval = StrictFloatField(min_value=0, max_value=60)


async def ticks(params: dict, data):
    """Yield ``params["count"]`` ticks, ``params["interval"]`` seconds apart on a fixed
    schedule from the input's ``start_at`` (Unix time), when it is still ahead."""
    loop = asyncio.get_running_loop()
    start_at = data.get("start_at") if isinstance(data, dict) else None
    ahead = start_at - time.time() if isinstance(start_at, int | float) else 0.0
    start = loop.time() + max(0.0, ahead)
    for tick in range(params["count"]):
        await asyncio.sleep(max(0.0, start + tick * params["interval"] - loop.time()))
        yield tick


@register
class Emit(NodeType):
    """Records ``count`` log lines, ``interval`` seconds apart, paced on a fixed
    schedule so that a slow write does not lower the rate. The schedule starts
    at the input's ``start_at`` (Unix time) if it is given and still ahead, so
    that a benchmark can spread its executions' ticks evenly."""

    type_name = "bench_emit"
    params_serializer = EmitParams

    async def run(self, ctx, params, data):
        async for tick in ticks(params, data):
            await ctx.log(f"tick {tick}")
        return {"ticks": params["count"]}


@register
class Stream(NodeType):
    """Streams ``count`` pieces to its ``output`` stream, ``interval`` seconds apart on
    a fixed schedule (as ``bench_emit``), each piece the Unix time it was written
    and a space, so that a subscriber can tell each piece's latency."""

    type_name = "bench_stream"
    params_serializer = EmitParams

    async def run(self, ctx, params, data):
        async for _ in ticks(params, data):
            await ctx.stream(f"{time.time():.6f} ")
        return {"pieces": params["count"]}
