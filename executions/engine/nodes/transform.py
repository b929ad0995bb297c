from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from executions.engine.expressions import InvalidExpression, expression_check, expression_search
from executions.engine.fields import StrictCharField
from executions.engine.registry import NodeType, register


class TransformParams(serializers.Serializer):
    expression = StrictCharField()

    def validate_expression(self, value: str) -> str:
        try:
            expression_check(value)
        except InvalidExpression as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value


@register
class Transform(NodeType):
    """Output is the JMESPath ``expression`` applied to the node's input, evaluated
    within the bounds of ``executions.engine.expressions``."""

    type_name = "transform"
    summary = _(
        "Output is the JMESPath `expression` applied to the node's input, evaluated within "
        "bounds of time, memory and size."
    )
    params_serializer = TransformParams

    async def run(self, ctx, params, data):
        return await expression_search(params["expression"], data)
