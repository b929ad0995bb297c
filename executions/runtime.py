"""Tuning for the long-running processes: servers and workers."""

import ctypes
import gc
import logging
import platform
import sys

from django.conf import settings
from django.core import checks

logger = logging.getLogger(__name__)

# glibc's mallopt parameter for the number of malloc arenas.
M_ARENA_MAX = -8


def tune_garbage_collector() -> None:
    """Collect young objects less often and leave start-up objects out of full collections.

    A server holding thousands of sockets keeps hundreds of thousands of
    long-lived objects. With Python's default thresholds, full collections walk
    them all again and again and pause every thread for hundreds of
    milliseconds: at 1,000 subscribers the benchmark's p99 went from 716 ms to
    41 ms with this.
    """
    gc.set_threshold(100_000, 20, 100)
    gc.freeze()


def tune_thread_switching() -> None:
    """Hand the interpreter lock to a waiting thread sooner (``PROCESS_SWITCH_INTERVAL``).

    A server's event loop gives up the lock at every system call (each socket
    write, each poll) and then waits for it while other threads (database
    calls, in-process runs, sync views) compute. With Python's default of
    5 ms, each of the several loop turns between an event's commit and its
    sends could wait that long on a busy machine; queueing on one turn after
    another is what turned milliseconds into seconds.
    """
    sys.setswitchinterval(settings.PROCESS_SWITCH_INTERVAL)


def limit_malloc_arenas() -> bool:
    """Let the C allocator keep at most ``PROCESS_MALLOC_ARENAS`` arenas (glibc only);
    whether the limit was set.

    glibc gives each thread that allocates while another does an arena of its
    own, up to eight per core, and an arena keeps the memory it once held.
    The socket read pool's threads, the engine's database threads and the
    request threads each fill one with query rows and SQLite pages, and
    the process keeps it all: in the benchmark's 1,000 subscriptions on 10
    sockets, it was most of what one more subscription cost. Called before
    the process starts its threads; 0 leaves glibc's default.
    """
    count = settings.PROCESS_MALLOC_ARENAS
    if not count or platform.libc_ver()[0] != "glibc":
        return False
    try:
        # The running program's symbols, glibc's among them.
        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):
        logger.warning("Could not limit the malloc arenas", exc_info=True)
        return False


@checks.register
def check_malloc_arenas(**kwargs) -> list[checks.Error]:
    value = settings.PROCESS_MALLOC_ARENAS
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1024:
        return []
    return [
        checks.Error(
            f"PROCESS_MALLOC_ARENAS is {value!r}; it must be a whole number from 0 "
            "(glibc's default) to 1024.",
            id="executions.E111",
        )
    ]


@checks.register
def check_switch_interval(**kwargs) -> list[checks.Error]:
    value = settings.PROCESS_SWITCH_INTERVAL
    if isinstance(value, int | float) and 0.00001 <= value <= 0.1:
        return []
    return [
        checks.Error(
            f"PROCESS_SWITCH_INTERVAL is {value!r}; it must be a number of seconds "
            "from 0.00001 to 0.1 (Python's default is 0.005).",
            id="executions.E110",
        )
    ]
