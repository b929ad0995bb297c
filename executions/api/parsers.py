"""Request body parsers that answer any JSON, however deep, with data or a 400."""

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with nesting capped at ``API_MAX_JSON_DEPTH`` levels.

    Python's decoder raises ``RecursionError`` (not a ``ValueError``) on
    deeply nested arrays or objects, which would be a 500; and data nested
    just below that limit would make every later step that recurses (validation,
    storage, the wire) fail instead.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_JSON_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(too_deep(limit)) from None
        if json_depth(data, limit) > limit:
            raise ParseError(too_deep(limit))
        return data


def too_deep(limit: int) -> str:
    return _(
        "JSON parse error - nested too deeply: at most %(limit)d levels of arrays and "
        "objects (API_MAX_JSON_DEPTH). Flatten the data."
    ) % {"limit": limit}


def json_depth(data, limit: int) -> int:
    """How deeply ``data`` nests arrays and objects, counted up to ``limit + 1``."""
    deepest, pending = 0, [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest
