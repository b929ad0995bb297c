"""Node types registered by the tests, the way another Django app would."""

import asyncio

from rest_framework import serializers

from executions.engine.fields import StrictCharField, StrictIntegerField
from executions.engine.registry import NodeType, register
from executions.exceptions import NodeFailed


class FlakyParams(serializers.Serializer):
    fail_times = StrictIntegerField(min_value=0)
    mode = serializers.ChoiceField(choices=["error", "hang"], default="error")


@register
class Flaky(NodeType):
    """Fails (or hangs, to time out) on its first ``fail_times`` attempts."""

    type_name = "test_flaky"
    params_serializer = FlakyParams

    async def run(self, ctx, params, data):
        if ctx.attempt <= params["fail_times"]:
            if params["mode"] == "hang":
                await asyncio.sleep(3600)
            raise NodeFailed(f"flaked on attempt {ctx.attempt}")
        return {"attempt": ctx.attempt}


class ChattyParams(serializers.Serializer):
    updates = StrictIntegerField(min_value=1)
    interval = serializers.FloatField(min_value=0)


@register
class Chatty(NodeType):
    """Reports progress ``updates`` times, ``interval`` seconds apart."""

    type_name = "test_chatty"
    params_serializer = ChattyParams

    async def run(self, ctx, params, data):
        for step in range(1, params["updates"] + 1):
            ctx.progress(step / params["updates"])
            await asyncio.sleep(params["interval"])
        return data


class ShoutParams(serializers.Serializer):
    field = StrictCharField()


@register
class Shout(NodeType):
    """The README's custom node example: upper-cases one field of its input."""

    type_name = "test_shout"
    params_serializer = ShoutParams

    async def run(self, ctx, params, data):
        await ctx.log(f"shouting {params['field']}")
        return {**data, params["field"]: str(data[params["field"]]).upper()}


class ChatterParams(serializers.Serializer):
    lines = StrictIntegerField(min_value=0)


@register
class Chatter(NodeType):
    """Writes ``lines`` log lines, then passes its input on."""

    type_name = "test_chatter"
    params_serializer = ChatterParams

    async def run(self, ctx, params, data):
        for line in range(1, params["lines"] + 1):
            await ctx.log(f"{ctx.node_id} line {line}")
        return data


class LoudParams(serializers.Serializer):
    size = StrictIntegerField(min_value=1)
    then = serializers.ChoiceField(choices=["log", "fail"])


@register
class Loud(NodeType):
    """Logs, or fails with, a text of ``size`` characters (as a custom node may)."""

    type_name = "test_loud"
    params_serializer = LoudParams

    async def run(self, ctx, params, data):
        text = "é" * params["size"]
        if params["then"] == "fail":
            raise NodeFailed(text)
        await ctx.log(text)
        return data


class RendezvousParams(serializers.Serializer):
    count = StrictIntegerField(min_value=1)
    timeout = serializers.FloatField(min_value=0)


# The nodes of each execution that have reached a rendezvous.
_arrived: dict[tuple, set[str]] = {}


@register
class Rendezvous(NodeType):
    """Waits until ``count`` rendezvous nodes of its execution are running at
    once; fails after ``timeout`` seconds if they never are."""

    type_name = "test_rendezvous"
    params_serializer = RendezvousParams

    async def run(self, ctx, params, data):
        arrived = _arrived.setdefault((ctx.execution_id, params["count"]), set())
        arrived.add(ctx.node_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + params["timeout"]
        while len(arrived) < params["count"]:
            if loop.time() > deadline:
                raise NodeFailed(f"{len(arrived)} of {params['count']} nodes ran at once")
            await asyncio.sleep(0.01)
        return {"together": len(arrived)}


class StreamerParams(serializers.Serializer):
    pieces = serializers.ListField(child=serializers.JSONField(), max_length=10_000)
    stream = StrictCharField(default="output")
    interval = serializers.FloatField(min_value=0, default=0)
    json = serializers.BooleanField(default=False)
    fail_after = StrictIntegerField(min_value=0, required=False)


@register
class Streamer(NodeType):
    """Streams ``pieces`` (texts, or JSON values with ``json``), ``interval`` seconds
    apart; fails after ``fail_after`` of them when that is given."""

    type_name = "test_streamer"
    params_serializer = StreamerParams

    async def run(self, ctx, params, data):
        write = ctx.stream_json if params["json"] else ctx.stream
        for index, piece in enumerate(params["pieces"]):
            if index == params.get("fail_after"):
                raise NodeFailed(f"broke after {index} pieces")
            await write(piece, name=params["stream"])
            if params["interval"]:
                await asyncio.sleep(params["interval"])
        return {"pieces": len(params["pieces"])}


@register
class Crash(NodeType):
    """A bug in a node type: raises something the engine does not expect."""

    type_name = "test_crash"
    params_serializer = serializers.Serializer

    async def run(self, ctx, params, data):
        raise RuntimeError("a bug in the node")
