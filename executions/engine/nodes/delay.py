import asyncio

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from executions.engine.fields import StrictFloatField
from executions.engine.registry import NodeType, register

# Progress is reported this often while waiting (or 100 times per wait, if rarer).
PROGRESS_STEP_SECONDS = 0.5


class DelayParams(serializers.Serializer):
    seconds = StrictFloatField(min_value=0, max_value=3600)


@register
class Delay(NodeType):
    """Waits ``seconds`` (fractions allowed) without holding a thread, reporting
    its progress; passes its input on."""

    type_name = "delay"
    summary = _(
        "Waits `seconds` (fractions allowed) without holding a thread, reporting its "
        "progress; passes its input on."
    )
    params_serializer = DelayParams

    async def run(self, ctx, params, data):
        total = params["seconds"]
        loop = asyncio.get_running_loop()
        end = loop.time() + total
        step = max(PROGRESS_STEP_SECONDS, total / 100)
        while (remaining := end - loop.time()) > 0:
            await asyncio.sleep(min(step, remaining))
            ctx.progress(1 - max(0.0, end - loop.time()) / total)
        return data
