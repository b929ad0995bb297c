"""This process's runner loop, where every backend here runs its executions.

They run on one background event loop: waiting nodes cost no thread, so
hundreds run at once. The servers of the embedded mode and the Celery workers
both run executions on it.
"""

import concurrent.futures
import logging
from typing import Any

from executions.background import BackgroundLoop
from executions.engine.runner import cancel_local_run, run_execution
from executions.metrics import loop_lag
from executions.runners.base import Runner

logger = logging.getLogger(__name__)

in_process_loop = BackgroundLoop("executions-runner")
_running: set[concurrent.futures.Future] = set()


def run_here(execution_id: Any) -> concurrent.futures.Future:
    """Run an execution on this process's runner loop."""
    loop_lag.watch("runner", in_process_loop.loop)
    future = in_process_loop.submit(run_execution(execution_id))
    _running.add(future)
    future.add_done_callback(_finished)
    return future


def stop_in_process_runs(timeout: float = 10) -> None:
    """Cancel the executions running in this process and wait for them to stop."""
    futures = list(_running)
    for future in futures:
        future.cancel()
    concurrent.futures.wait(futures, timeout=timeout)


def _finished(future: concurrent.futures.Future) -> None:
    _running.discard(future)
    if not future.cancelled() and future.exception() is not None:
        logger.error("Execution runner crashed", exc_info=future.exception())


class LoopRunner(Runner):
    """A backend whose executions run on a runner loop like this process's."""

    def cancel_notify(self, execution_id: Any) -> None:
        cancel_local_run(execution_id)

    def stop(self, timeout: float = 10) -> None:
        stop_in_process_runs(timeout)
