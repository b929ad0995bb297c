"""What a socket's client may send: frame size and message rate.

daphne refuses frames over its own maximum (1 MiB by default, close 1009
without a message); these limits sit below it and say why before closing.
"""

from collections import deque

from django.conf import settings
from django.utils.translation import gettext as _

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009


class InboundGuard:
    """Checks each inbound frame of one socket against the size and rate limits.

    Requests to subscribe or unsubscribe (``/api/v1/ws``) have a budget of
    their own, ``REALTIME_MAX_SUBSCRIBES_PER_SECOND``, so that a client can
    follow a page of executions at once; every other frame counts against
    ``REALTIME_MAX_MESSAGES_PER_SECOND``.
    """

    def __init__(self) -> None:
        self._arrivals: dict[str, deque[float]] = {}

    def check(self, text: str | None, data: bytes | None, now: float) -> tuple[str, int] | None:
        """``check_size``, then ``check_rate`` of an ordinary message."""
        return self.check_size(text, data) or self.check_rate(now)

    @staticmethod
    def check_size(text: str | None, data: bytes | None) -> tuple[str, int] | None:
        """``(why, close code)`` when the frame is too big, else None."""
        size_limit = settings.REALTIME_MAX_MESSAGE_BYTES
        size = len(data) if data is not None else len(text.encode("utf-8", "surrogatepass"))
        if size > size_limit:
            return (
                _(
                    "Message too big: %(size)d bytes, the limit is %(limit)d "
                    "(REALTIME_MAX_MESSAGE_BYTES). A client sends only small JSON messages "
                    '(a {"type": "ping"}, a subscribe).'
                )
                % {"size": size, "limit": size_limit},
                CLOSE_TOO_BIG,
            )
        return None

    def check_rate(self, now: float, *, subscribe: bool = False) -> tuple[str, int] | None:
        """``(why, close code)`` when a message arriving at ``now`` is one too many in
        the last second (a subscribe or unsubscribe request with ``subscribe``)."""
        if subscribe:
            kind, limit, setting = (
                "subscribe",
                settings.REALTIME_MAX_SUBSCRIBES_PER_SECOND,
                ("REALTIME_MAX_SUBSCRIBES_PER_SECOND"),
            )
        else:
            kind, limit, setting = (
                "message",
                settings.REALTIME_MAX_MESSAGES_PER_SECOND,
                ("REALTIME_MAX_MESSAGES_PER_SECOND"),
            )
        arrivals = self._arrivals.setdefault(kind, deque())
        arrivals.append(now)
        while arrivals and arrivals[0] <= now - 1.0:
            arrivals.popleft()
        if len(arrivals) <= limit:
            return None
        values = {"limit": limit, "setting": setting}
        if subscribe:
            return (
                _(
                    "Too many subscribe or unsubscribe requests: more than %(limit)d in one "
                    "second (%(setting)s)."
                )
                % values,
                CLOSE_POLICY_VIOLATION,
            )
        return (
            _(
                "Too many messages: more than %(limit)d in one second (%(setting)s). "
                "A ping every 30 s is enough."
            )
            % values,
            CLOSE_POLICY_VIOLATION,
        )
