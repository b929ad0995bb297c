"""System checks of the realtime app's settings as they are at run time.

Reading a variable already refuses a value outside its declared bounds
(``realtime.conf``); these checks hold the same bounds against the Django
settings, and the settings that cannot take effect under daphne.
"""

from django.conf import settings
from django.core import checks

from executions.env import bounds_check
from realtime import conf

# daphne's own limit on an inbound WebSocket frame unless it is started with
# a larger --websocket-max-frame-size.
DAPHNE_MAX_FRAME_BYTES = 1024 * 1024


# Values outside the bounds their declarations give.
check_declared_bounds = checks.register(bounds_check(conf.SETTINGS, "realtime.E100"))


@checks.register
def check_message_limit(**kwargs) -> list[checks.Warning]:
    """A frame limit above the one daphne applies first."""
    limit = settings.REALTIME_MAX_MESSAGE_BYTES
    if not isinstance(limit, int) or limit <= DAPHNE_MAX_FRAME_BYTES:
        return []
    message = (
        f"REALTIME_MAX_MESSAGE_BYTES is {limit!r}, above daphne's own frame limit "
        f"({DAPHNE_MAX_FRAME_BYTES}): daphne closes the socket with 1009, without a message, "
        "before this limit applies. Lower it, or start daphne with a larger "
        "--websocket-max-frame-size."
    )
    return [checks.Warning(message, id="realtime.W141")]
