"""Database reads for sockets, on a pool of their own.

Channels' ``database_sync_to_async`` runs every call in one shared thread,
which also serves Django's sync views: hundreds of sockets connecting at once
would queue behind each other there. Socket reads are independent, so they
run side by side here.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync
from django.conf import settings

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=settings.REALTIME_DB_THREADS, thread_name_prefix="realtime-db"
        )
    return _pool


def db_read(fn: Callable) -> Callable:
    """An awaitable version of ``fn`` that runs in the socket read pool."""
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=_executor())
