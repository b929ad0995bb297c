"""What a socket's client may send: frame size and message rate.

daphne refuses frames over its own maximum (1 MiB by default, close 1009
without a message); these limits sit below it and say why before closing.
"""

from collections import deque

from django.conf import settings

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009


class InboundGuard:
    """Checks each inbound frame of one socket against the size and rate limits."""

    def __init__(self) -> None:
        self._arrivals: deque[float] = deque()

    def check(self, text: str | None, data: bytes | None, now: float) -> tuple[str, int] | None:
        """``(why, close code)`` when the frame arriving at ``now`` breaks a limit, else None."""
        size_limit = settings.REALTIME_MAX_MESSAGE_BYTES
        size = len(data) if data is not None else len(text.encode("utf-8", "surrogatepass"))
        if size > size_limit:
            return (
                f"Message too big: {size} bytes, the limit is {size_limit} "
                "(REALTIME_MAX_MESSAGE_BYTES). The only message a client sends is "
                '{"type": "ping"}.',
                CLOSE_TOO_BIG,
            )
        rate_limit = settings.REALTIME_MAX_MESSAGES_PER_SECOND
        self._arrivals.append(now)
        while self._arrivals and self._arrivals[0] <= now - 1.0:
            self._arrivals.popleft()
        if len(self._arrivals) > rate_limit:
            return (
                f"Too many messages: more than {rate_limit} in one second "
                "(REALTIME_MAX_MESSAGES_PER_SECOND). A ping every 30 s is enough.",
                CLOSE_POLICY_VIOLATION,
            )
        return None
