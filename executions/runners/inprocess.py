"""The embedded mode (``EXECUTIONS_RUNNER = "inprocess"``): each server runs the
executions it creates, on its runner loop, with no broker nor worker."""

from functools import partial
from typing import Any, ClassVar

from executions.maintenance import start_maintenance
from executions.pushes import after_pushes
from executions.runners.local import LoopRunner, run_here


class InProcessRunner(LoopRunner):
    """Runs each execution in the process that created it."""

    embedded: ClassVar[bool] = True

    def dispatch(self, execution_id: Any) -> None:
        # Once the transaction's pushes are on their way to this process's sockets.
        after_pushes(partial(run_here, execution_id))

    def start(self) -> None:
        # This server runs the executions, so it also recovers those that its
        # previous instance left behind when it stopped.
        start_maintenance()
