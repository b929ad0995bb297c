"""The execution state machine: the statuses of an execution and of its nodes,
and which status may follow which."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ExecutionStatus(models.TextChoices):
    """Lifecycle of an execution; see ``TRANSITIONS`` for the transitions."""

    PENDING = "pending", _("Pending")
    """Created and waiting for a runner to pick it up."""
    RUNNING = "running", _("Running")
    """Claimed by a runner; nodes are being executed."""
    COMPLETED = "completed", _("Completed")
    """Every node finished; ``result`` holds the sink output."""
    FAILED = "failed", _("Failed")
    """A node failed or the run was lost; ``error`` says why."""
    CANCELLED = "cancelled", _("Cancelled")
    """Stopped on request; running nodes ended ``cancelled``, the rest ``skipped``."""


class NodeStatus(models.TextChoices):
    """Lifecycle of one node within an execution."""

    PENDING = "pending", _("Pending")
    """Not started yet (never sent as a node event)."""
    RUNNING = "running", _("Running")
    """An attempt is running."""
    COMPLETED = "completed", _("Completed")
    """Produced its output."""
    FAILED = "failed", _("Failed")
    """The attempt failed; a later attempt may follow when retries remain."""
    SKIPPED = "skipped", _("Skipped")
    """Will not run: downstream of a falsy condition, or the execution stopped first."""
    CANCELLED = "cancelled", _("Cancelled")
    """Was running when the execution was cancelled or failed elsewhere."""


TERMINAL_STATUSES = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)

TRANSITIONS: dict[str, frozenset[str]] = {
    ExecutionStatus.PENDING: frozenset(
        {ExecutionStatus.RUNNING, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
    ),
    ExecutionStatus.RUNNING: frozenset(
        {
            # back to pending: its runner was lost or released it; it runs again
            ExecutionStatus.PENDING,
            ExecutionStatus.RUNNING,
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        }
    ),
    ExecutionStatus.COMPLETED: frozenset(),
    ExecutionStatus.FAILED: frozenset(),
    ExecutionStatus.CANCELLED: frozenset(),
}

# Node statuses after which an attempt is over.
NODE_FINISHED_STATUSES = frozenset(
    {NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
)


def can_transition(current: str, new: str) -> bool:
    """Whether an execution in ``current`` may move to ``new`` (same status = update)."""
    return new in TRANSITIONS[current]
