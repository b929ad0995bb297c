"""The base class of runner backends, the part of a runner the services see."""

from typing import Any, ClassVar


class Runner:
    """Takes each new execution to a process that runs it.

    The services call ``dispatch`` once an execution is created (or due to run
    again) and ``cancel_notify`` once its cancellation is requested, both after
    their transaction commits. A server process calls ``start`` as it starts;
    ``stop`` ends the runs of this process (on shutdown, and after each test).
    """

    embedded: ClassVar[bool] = False
    """The servers run the executions themselves; otherwise worker processes do."""

    def dispatch(self, execution_id: Any) -> None:
        """Send a pending execution to a process that runs it."""
        raise NotImplementedError

    def cancel_notify(self, execution_id: Any) -> None:
        """Tell a run of this process at once that its execution was asked to stop
        (runs elsewhere notice the request in the database within a second)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start what this backend needs in a server process; called once as it starts."""

    def stop(self, timeout: float = 10) -> None:
        """Cancel the executions running in this process and wait up to ``timeout``
        seconds for them to stop."""

    def queue_name(self) -> str | None:
        """The broker's queue that dispatches wait in, or ``None`` without a broker."""
        return None

    def waiting(self) -> int | None:
        """Dispatches sent and not yet taken by a runner, or ``None`` when unknown."""
        return None
