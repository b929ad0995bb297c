"""Hands new executions to whatever runs them.

In the embedded mode (``EXECUTIONS_RUNNER = "inprocess"``) executions run in
this process, on one background event loop: waiting nodes cost no thread, so
hundreds run at once. With ``"celery"`` a Celery task carries the execution
to a worker process (``manage.py worker``), which runs it on the same kind of
loop.
"""

import concurrent.futures
import logging
import os
import socket
from functools import partial
from typing import Any

from django.conf import settings

from executions.background import BackgroundLoop
from executions.metrics import loop_lag

logger = logging.getLogger(__name__)

in_process_loop = BackgroundLoop("executions-runner")
_running: set[concurrent.futures.Future] = set()


def runner_name() -> str:
    """This process, as it appears in ``Execution.claimed_by`` and engine logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def execution_dispatch(execution_id: Any) -> None:
    """Send a pending execution to a runner; called after its transaction commits
    (in this process, once the transaction's pushes are on their way to its sockets)."""
    if settings.EXECUTIONS_RUNNER == "celery":
        from executions.queue import run_execution_task

        run_execution_task.delay(str(execution_id))
    else:
        from executions.pushes import after_pushes

        after_pushes(partial(run_here, execution_id))


def dispatches_waiting() -> int | None:
    """Dispatches sent and not yet taken by a runner, or ``None`` when unknown
    (in this process's loop they are taken at once)."""
    if settings.EXECUTIONS_RUNNER != "celery":
        return None
    from executions.queue import queue_length

    return queue_length()


def run_here(execution_id: Any) -> concurrent.futures.Future:
    """Run an execution on this process's runner loop."""
    from executions.engine.runner import run_execution

    loop_lag.watch("runner", in_process_loop.loop)
    future = in_process_loop.submit(run_execution(execution_id))
    _running.add(future)
    future.add_done_callback(_finished)
    return future


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
