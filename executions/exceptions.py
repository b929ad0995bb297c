"""Errors raised by the executions app; catch ``ExecutionsError`` for all of them."""


class ExecutionsError(Exception):
    """Base of this app's errors; never raised directly."""


class InvalidTransition(ExecutionsError):
    """The requested status change is not allowed from the execution's current status."""


class WorkflowInUse(ExecutionsError):
    """The workflow still has executions and so cannot be deleted."""


class NodeFailed(ExecutionsError):
    """A node could not produce its output; the message is shown to the user."""
