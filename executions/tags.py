"""The rules of an execution's tags: what ``POST /api/v1/executions`` accepts.

At most ``MAX_TAGS`` strings of 1 to ``MAX_TAG_LENGTH`` characters each. A tag
given twice is kept once, where it first appears: tags are a set, and a client
that repeats one has not asked for anything else.
"""

from typing import Any

from executions.exceptions import InvalidTags
from executions.models import ExecutionTag

MAX_TAGS = 10
MAX_TAG_LENGTH = ExecutionTag._meta.get_field("tag").max_length
RULE = f"at most {MAX_TAGS} tags, each a string of 1 to {MAX_TAG_LENGTH} characters"


def tag_check(tag: Any, *, name: str = "tag") -> str:
    """``tag`` if it is a valid tag; else ``InvalidTags`` naming it as ``name``."""
    if not isinstance(tag, str):
        raise InvalidTags(
            f"{name} must be a string of 1 to {MAX_TAG_LENGTH} characters, "
            f"not {type(tag).__name__}."
        )
    if not 1 <= len(tag) <= MAX_TAG_LENGTH:
        raise InvalidTags(
            f"{name} is {len(tag)} characters long; a tag is 1 to {MAX_TAG_LENGTH} characters."
        )
    return tag


def tags_clean(tags: Any) -> list[str]:
    """The tags as stored: checked, repeats dropped, in their order; ``InvalidTags``
    says which rule a value breaks. The count is checked before any tag is."""
    if not isinstance(tags, list | tuple):
        raise InvalidTags(
            f'tags must be a list of strings, e.g. ["nightly", "team-a"], '
            f"not {type(tags).__name__}."
        )
    if len(tags) > MAX_TAGS:
        raise InvalidTags(f"Too many tags: {len(tags)}; an execution takes {RULE}. Remove some.")
    for position, tag in enumerate(tags, start=1):
        tag_check(tag, name=f"Tag {position}")
    return list(dict.fromkeys(tags))
