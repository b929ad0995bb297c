"""Event-loop lag: how late a process's loops run what is due.

A loop that is late runs every socket's send and every node's next step late
by as much. A task per watched loop sleeps ``INTERVAL`` seconds again and
again and records how much later than that it woke: a runner's loop from its
first run on, a server's from its first scrape on.
"""

import asyncio
import threading

from prometheus_client import Histogram

from executions.metrics.registry import metrics_enabled

INTERVAL = 0.5
LOOPS = ("runner", "server")

LOOP_LAG = Histogram(
    "workflows_event_loop_lag_seconds",
    f"How much later than due this process's event loop (runner: executions; "
    f"server: sockets) woke from a {INTERVAL:g} s sleep.",
    ["loop"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Each series exists before its first measure.
_by_loop = {name: LOOP_LAG.labels(name) for name in LOOPS}


class LoopLag:
    """The process's loop-lag measures, one task per loop; ``stop`` ends them all."""

    def __init__(self) -> None:
        self._tasks: dict[asyncio.AbstractEventLoop, asyncio.Task | None] = {}
        self._lock = threading.Lock()

    def watch(self, name: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Measure ``loop`` (by default the running one) as ``name``, one of ``LOOPS``,
        from now on; once a loop, from any thread."""
        if not metrics_enabled():
            return
        loop = loop or asyncio.get_running_loop()
        with self._lock:
            task = self._tasks.get(loop, False)
            if task is None or (task and not task.done()):
                return  # measured, or about to be
            self._tasks = {k: t for k, t in self._tasks.items() if not k.is_closed()}
            self._tasks[loop] = None
        loop.call_soon_threadsafe(self._start, loop, name)

    def _start(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        with self._lock:
            if loop in self._tasks:  # not stopped meanwhile
                self._tasks[loop] = loop.create_task(self._measure(_by_loop[name]))

    def stop(self) -> None:
        """End every measure (tests, shutdown); from any thread."""
        with self._lock:
            tasks, self._tasks = self._tasks, {}
        for loop, task in tasks.items():
            if task is not None and not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)

    @staticmethod
    async def _measure(histogram) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + INTERVAL
            await asyncio.sleep(INTERVAL)
            histogram.observe(max(0.0, loop.time() - due))


loop_lag = LoopLag()
