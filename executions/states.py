"""The execution state machine: which status may follow which."""

from executions.models import ExecutionStatus

TERMINAL_STATUSES = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED})

TRANSITIONS: dict[str, frozenset[str]] = {
    ExecutionStatus.PENDING: frozenset({ExecutionStatus.RUNNING, ExecutionStatus.FAILED}),
    ExecutionStatus.RUNNING: frozenset(
        {ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED, ExecutionStatus.FAILED}
    ),
    ExecutionStatus.COMPLETED: frozenset(),
    ExecutionStatus.FAILED: frozenset(),
}


def can_transition(current: str, new: str) -> bool:
    """Whether an execution in ``current`` may move to ``new`` (same status = update)."""
    return new in TRANSITIONS[current]
