from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from executions.engine.fields import StrictCharField
from executions.engine.registry import NodeType, register
from executions.exceptions import NodeFailed


class FailParams(serializers.Serializer):
    message = StrictCharField(max_length=10_000)


@register
class Fail(NodeType):
    """Always fails with ``message``."""

    type_name = "fail"
    summary = _("Always fails with `message`.")
    params_serializer = FailParams

    async def run(self, ctx, params, data):
        raise NodeFailed(params["message"])
