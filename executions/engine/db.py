"""Database calls from the engine's event loop, on a small pool of threads."""

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connections

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.EXECUTIONS_DB_THREADS, thread_name_prefix="executions-db"
            )
        return _executor


def _call(fn: Callable[..., T], kwargs: dict) -> T:
    # These threads live as long as the process: drop connections that broke
    # or outlived CONN_MAX_AGE before using them.
    close_old_connections()
    return fn(**kwargs)


async def db(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run the sync ``fn(**kwargs)`` in a database thread and return its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), partial(_call, fn, kwargs))


def close_db_threads() -> None:
    """Close the pool's database connections and stop its threads (tests, shutdown)."""
    global _executor
    with _executor_lock:
        executor, _executor = _executor, None
    if executor is not None:
        shutdown_closing_connections(executor)


def shutdown_closing_connections(executor: ThreadPoolExecutor) -> None:
    """Close the database connections of every thread of ``executor``, then stop it."""
    workers = executor._max_workers
    barrier = threading.Barrier(workers, timeout=10)

    def close_here() -> None:
        # The barrier makes each thread take exactly one of these calls.
        barrier.wait()
        connections.close_all()

    for future in [executor.submit(close_here) for _ in range(workers)]:
        future.result()
    executor.shutdown(wait=True)
