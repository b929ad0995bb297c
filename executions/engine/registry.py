"""The node type registry. Other apps add node types with ``@register``; a test
that registers a type of its own removes it again with ``unregister``, or
registers it for a ``with`` block with ``registered``.

A node type is a class with a unique ``type_name``, a DRF serializer that
validates its ``params``, and an async ``run`` that turns the node's input
into its output::

    from rest_framework import serializers
    from executions.engine.registry import NodeType, register

    class UpperParams(serializers.Serializer):
        field = serializers.CharField()

    @register
    class Upper(NodeType):
        type_name = "upper"
        params_serializer = UpperParams

        async def run(self, ctx, params, data):
            return {**data, params["field"]: str(data[params["field"]]).upper()}
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from rest_framework import serializers

from executions.engine.context import NodeContext


class NodeType:
    """Base class of every node type."""

    type_name: ClassVar[str]
    params_serializer: ClassVar[type[serializers.Serializer]]
    # What the dashboard says the type does (gettext_lazy); None: its docstring's
    # first paragraph.
    summary: ClassVar[str | Promise | None] = None

    def validate_params(self, params: Any) -> dict:
        """Return the cleaned params or raise ``serializers.ValidationError``."""
        if not isinstance(params, dict):
            raise serializers.ValidationError(_("must be a JSON object."))
        serializer = self.params_serializer(data=params)
        serializer.is_valid(raise_exception=True)
        unknown = sorted(set(params) - set(serializer.fields))
        if unknown:
            raise serializers.ValidationError(
                _("unknown keys %(keys)s; allowed: %(allowed)s.")
                % {"keys": unknown, "allowed": sorted(serializer.fields)}
            )
        return dict(serializer.validated_data)

    async def run(self, ctx: NodeContext, params: dict, data: Any) -> Any:
        """Run the node on ``data`` and return its output; raise ``NodeFailed`` to fail."""
        raise NotImplementedError


_registry: dict[str, NodeType] = {}


def register(node_class: type[NodeType]) -> type[NodeType]:
    """Class decorator that makes a node type available to workflow definitions."""
    name = node_class.type_name
    if name in _registry and type(_registry[name]) is not node_class:
        raise ValueError(f"A node type named {name!r} is already registered.")
    _registry[name] = node_class()
    return node_class


def unregister(node_class: type[NodeType]) -> None:
    """Remove a node type that ``register`` added; nothing happens when it is not
    registered (another class holding its name stays)."""
    if type(_registry.get(node_class.type_name)) is node_class:
        del _registry[node_class.type_name]


@contextmanager
def registered(node_class: type[NodeType]) -> Iterator[type[NodeType]]:
    """Register ``node_class`` for a ``with`` block; it is removed after it, unless it
    was registered before."""
    already = type(_registry.get(node_class.type_name)) is node_class
    register(node_class)
    try:
        yield node_class
    finally:
        if not already:
            unregister(node_class)


def get_node_type(name: str) -> NodeType | None:
    return _registry.get(name)


def node_type_names() -> list[str]:
    return sorted(_registry)
