"""Where this project changes the libraries it is served by, one module a library.

Each module declares ``SUPPORTED``, the versions it was written for:
``check_versions`` (from ``realtime.apps`` at start-up) refuses any other.
``install`` puts the daphne and autobahn hooks in place; ``project.asgi``
calls it, so every process that loads the application (daphne, ``runserver``,
the tests) serves with them. docs/patches.md says what each replaces, why,
and how to check it on an upgrade.
"""

from realtime.patches import autobahn, channels, channels_redis, daphne, send_buffers
from realtime.patches.versions import require

PATCHES = (daphne, send_buffers, autobahn, channels, channels_redis)


def check_versions() -> None:
    """Raise ``ImproperlyConfigured`` if a patched library is at another version."""
    for patch in PATCHES:
        require(patch.__name__, patch.SUPPORTED)


def install() -> None:
    """Install the hooks on daphne and autobahn (once)."""
    daphne.install()
    autobahn.install()
