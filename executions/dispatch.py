"""Hands new executions to whatever runs them.

In the embedded mode executions run in this process, on one background event
loop: waiting nodes cost no thread, so hundreds can run at once.
"""

import concurrent.futures
import logging
from typing import Any

from executions.background import BackgroundLoop

logger = logging.getLogger(__name__)

in_process_loop = BackgroundLoop("executions-runner")
_running: set[concurrent.futures.Future] = set()


def execution_dispatch(execution_id: Any) -> None:
    """Start running a pending execution; called after the creating transaction commits."""
    from executions.engine.runner import run_execution

    future = in_process_loop.submit(run_execution(execution_id))
    _running.add(future)
    future.add_done_callback(_finished)


def execution_cancel_notify(execution_id: Any) -> None:
    """Tell this process's runner, at once, that an execution was asked to stop.

    Runners elsewhere notice the request in the database within a second.
    """
    from executions.engine.runner import cancel_local_run

    cancel_local_run(execution_id)


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
