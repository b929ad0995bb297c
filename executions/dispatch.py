"""Hands new executions to whatever runs them.

In the embedded mode executions run in this process, on one background event
loop: waiting nodes cost no thread, so hundreds can run at once.
"""

import logging
from typing import Any

from executions.background import BackgroundLoop

logger = logging.getLogger(__name__)

in_process_loop = BackgroundLoop("executions-runner")


def execution_dispatch(execution_id: Any) -> None:
    """Start running a pending execution; called after the creating transaction commits."""
    from executions.engine.runner import run_execution

    future = in_process_loop.submit(run_execution(execution_id))
    future.add_done_callback(_log_crash)


def _log_crash(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("Execution runner crashed", exc_info=future.exception())
