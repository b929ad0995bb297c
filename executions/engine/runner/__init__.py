"""The DAG runner: one execution's run (``run``), its nodes' attempts
(``attempts``), how often it records progress (``progress``), and the runs of
this process with the watcher that keeps their claims (``local_runs``)."""

from executions.engine.runner.attempts import NodeError
from executions.engine.runner.local_runs import (
    StopReason,
    active_runs,
    cancel_local_run,
    release_local_runs,
)
from executions.engine.runner.run import Run, run_execution

__all__ = [
    "NodeError",
    "Run",
    "StopReason",
    "active_runs",
    "cancel_local_run",
    "release_local_runs",
    "run_execution",
]
