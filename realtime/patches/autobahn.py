"""autobahn's debug-log arguments, made only for a line that is written.

``install`` replaces ``hltype``, ``hlval`` and ``pformat`` in
``autobahn.websocket.protocol`` and ``Timings.__str__``: autobahn styles and
formats them for every frame and connection, even with debug logging off
(docs/patches.md).
"""

import pprint

from realtime.patches.versions import Supported, require

SUPPORTED: Supported = {"autobahn": ("26.11.1",)}


def plain(value):
    """A log argument as it is: autobahn's highlighting, without its cost."""
    return value


class Pretty:
    """pprint's text of a log argument, made only if the line is written: autobahn
    formats its settings for a debug line at every connection."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def timings_text(timings) -> str:
    return pprint.pformat(timings._timings)


def install() -> None:
    """Replace the module's log helpers (checks the version first)."""
    import autobahn.websocket.protocol

    require(__name__, SUPPORTED)
    autobahn.websocket.protocol.hltype = plain
    autobahn.websocket.protocol.hlval = plain
    autobahn.websocket.protocol.pformat = Pretty
    autobahn.websocket.protocol.Timings.__str__ = timings_text
