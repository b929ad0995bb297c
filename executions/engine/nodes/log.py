from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from executions.engine.fields import StrictCharField
from executions.engine.registry import NodeType, register

LEVELS = ["info", "warning", "error"]


class LogParams(serializers.Serializer):
    message = StrictCharField(allow_blank=True, max_length=10_000)
    level = serializers.ChoiceField(choices=LEVELS, default="info")


@register
class Log(NodeType):
    """Records ``message`` as a log line of the execution; passes its input on."""

    type_name = "log"
    summary = _("Records `message` as a log line of the execution; passes its input on.")
    params_serializer = LogParams

    async def run(self, ctx, params, data):
        await ctx.log(params["message"], level=params["level"])
        return data
