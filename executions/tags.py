"""The rules of an execution's tags: what ``POST /api/v1/executions`` accepts.

At most ``MAX_TAGS`` strings of 1 to ``MAX_TAG_LENGTH`` characters each. A tag
given twice is kept once, where it first appears: tags are a set, and a client
that repeats one has not asked for anything else.
"""

from typing import Any

from django.utils.translation import gettext as _

from executions.exceptions import InvalidTags
from executions.models import ExecutionTag

MAX_TAGS = 10
MAX_TAG_LENGTH = ExecutionTag._meta.get_field("tag").max_length
# For the OpenAPI schema; the messages below say it in the request's language.
RULE = f"at most {MAX_TAGS} tags, each a string of 1 to {MAX_TAG_LENGTH} characters"


def tag_check(tag: Any, *, name: str | None = None) -> str:
    """``tag`` if it is a valid tag; else ``InvalidTags`` naming it as ``name``."""
    if name is None:
        name = _("tag")
    if not isinstance(tag, str):
        raise InvalidTags(
            _("%(name)s must be a string of 1 to %(max)d characters, not %(type)s.")
            % {"name": name, "max": MAX_TAG_LENGTH, "type": type(tag).__name__}
        )
    if not 1 <= len(tag) <= MAX_TAG_LENGTH:
        raise InvalidTags(
            _("%(name)s is %(length)d characters long; a tag is 1 to %(max)d characters.")
            % {"name": name, "length": len(tag), "max": MAX_TAG_LENGTH}
        )
    return tag


def tags_clean(tags: Any) -> list[str]:
    """The tags as stored: checked, repeats dropped, in their order; ``InvalidTags``
    says which rule a value breaks. The count is checked before any tag is."""
    if not isinstance(tags, list | tuple):
        raise InvalidTags(
            _('tags must be a list of strings, e.g. ["nightly", "team-a"], not %(type)s.')
            % {"type": type(tags).__name__}
        )
    if len(tags) > MAX_TAGS:
        raise InvalidTags(
            _(
                "Too many tags: %(count)d; an execution takes at most %(max_tags)d tags, "
                "each a string of 1 to %(max)d characters. Remove some."
            )
            % {"count": len(tags), "max_tags": MAX_TAGS, "max": MAX_TAG_LENGTH}
        )
    for position, tag in enumerate(tags, start=1):
        tag_check(tag, name=_("Tag %(position)d") % {"position": position})
    return list(dict.fromkeys(tags))
