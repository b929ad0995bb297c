import jmespath
from jmespath.exceptions import JMESPathError
from rest_framework import serializers

from executions.engine.fields import StrictCharField
from executions.engine.registry import NodeType, register
from executions.exceptions import NodeFailed


class TransformParams(serializers.Serializer):
    expression = StrictCharField()

    def validate_expression(self, value: str) -> str:
        try:
            jmespath.compile(value)
        except JMESPathError as exc:
            raise serializers.ValidationError(f"not a valid JMESPath expression: {exc}") from exc
        return value


@register
class Transform(NodeType):
    """Output is the JMESPath ``expression`` applied to the node's input."""

    type_name = "transform"
    params_serializer = TransformParams

    async def run(self, ctx, params, data):
        try:
            return jmespath.search(params["expression"], data)
        except JMESPathError as exc:
            raise NodeFailed(f"expression {params['expression']!r} failed: {exc}") from exc
