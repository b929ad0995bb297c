import jmespath
from jmespath.exceptions import JMESPathError
from rest_framework import serializers

from executions.engine.nodes.transform import TransformParams
from executions.engine.registry import NodeType, register
from executions.exceptions import NodeFailed


def is_falsy(value) -> bool:
    """JMESPath's falsy values: false, null, and empty strings, lists and objects."""
    return value is None or value is False or value in ("", [], {})


class ConditionParams(TransformParams):
    pass


@register
class Condition(NodeType):
    """Evaluates the JMESPath ``expression`` on its input; when the result is falsy
    every node downstream is skipped. Passes its input on."""

    type_name = "condition"
    params_serializer: type[serializers.Serializer] = ConditionParams

    async def run(self, ctx, params, data):
        try:
            value = jmespath.search(params["expression"], data)
        except JMESPathError as exc:
            raise NodeFailed(f"expression {params['expression']!r} failed: {exc}") from exc
        if is_falsy(value):
            await ctx.log(f"Condition {params['expression']!r} is false: skipping downstream")
            ctx.skip_downstream()
        return data
