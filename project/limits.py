"""A bound on the HTTP requests one server process runs at once.

Each request's synchronous code runs in a thread of its own (``project.http``),
with a database connection of its own. A burst of requests (a hundred pages polling
at the same moment) would open a connection for each, past PostgreSQL's
``max_connections``, and the requests beyond it would fail with 500s. Here at
most ``API_MAX_CONCURRENT_REQUESTS`` run at once and the rest wait their turn,
which costs the event loop a queue entry each. WebSockets are not counted:
they hold no thread (their reads go through their own small pool).
"""

import asyncio
import weakref


class ConcurrentRequestLimit:
    """ASGI middleware: at most ``limit`` HTTP requests run at once (0: no limit)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit
        self._slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.limit:
            return await self.app(scope, receive, send)
        async with self._slots_of_this_loop():
            return await self.app(scope, receive, send)

    def _slots_of_this_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self._slots:
            self._slots[loop] = asyncio.Semaphore(self.limit)
        return self._slots[loop]
