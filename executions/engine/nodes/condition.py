from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from executions.engine.expression_evaluator import is_falsy
from executions.engine.expressions import expression_is_truthy
from executions.engine.nodes.transform import TransformParams
from executions.engine.registry import NodeType, register

__all__ = ["Condition", "ConditionParams", "is_falsy"]


class ConditionParams(TransformParams):
    pass


@register
class Condition(NodeType):
    """Evaluates the JMESPath ``expression`` on its input (within the bounds of
    ``executions.engine.expressions``); when the result is falsy every node
    downstream is skipped. Passes its input on."""

    type_name = "condition"
    summary = _(
        "Evaluates the JMESPath `expression` on its input; when the result is falsy every "
        "node downstream is skipped. Passes its input on."
    )
    params_serializer: type[serializers.Serializer] = ConditionParams

    async def run(self, ctx, params, data):
        if not await expression_is_truthy(params["expression"], data):
            await ctx.log(f"Condition {params['expression']!r} is false: skipping downstream")
            ctx.skip_downstream()
        return data
