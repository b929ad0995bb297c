"""PostgreSQL, with connection health checks only for connections that sat idle.

Django's ``CONN_HEALTH_CHECKS`` pings a persistent connection (``SELECT 1``)
before its first query after every ``close_old_connections()``: once per
HTTP request, and, as the engine's and the sockets' database threads call
it before each unit of work, once per event written and per socket read.
Under load that ping is a round trip added to every write, a third of a log
line's. Here a connection used within the last
``DATABASE_HEALTH_CHECK_AFTER_IDLE`` seconds is not pinged: one that
broke since fails its next query as it would between a ping and that
query, Django marks it, and the next ``close_old_connections()`` replaces
it. Connections idle for longer are pinged as before.
"""

import time

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _used_at = float("-inf")

    def _cursor(self, name=None):
        cursor = super()._cursor(name)
        self._used_at = time.monotonic()
        return cursor

    def close_if_unusable_or_obsolete(self):
        super().close_if_unusable_or_obsolete()
        idle = time.monotonic() - self._used_at
        if self.connection is not None and idle < settings.DATABASE_HEALTH_CHECK_AFTER_IDLE:
            self.health_check_done = True
