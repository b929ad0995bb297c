"""Tuning for the long-running processes: servers and workers."""

import gc
import sys

from django.conf import settings
from django.core import checks


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
