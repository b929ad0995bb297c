"""Errors raised by the executions app; catch ``ExecutionsError`` for all of them."""


class ExecutionsError(Exception):
    """Base of this app's errors; never raised directly."""


class InvalidTransition(ExecutionsError):
    """The requested status change is not allowed from the execution's current status."""


class AlreadyFinished(ExecutionsError):
    """The execution has reached a terminal status; it cannot be cancelled."""


class WorkflowInUse(ExecutionsError):
    """The workflow still has executions and so cannot be deleted."""


class TooManyActiveExecutions(ExecutionsError):
    """The user already has as many pending and running executions as allowed."""


class TooManyWaiting(ExecutionsError):
    """The user has as many requests waiting for events (``?wait=``) as allowed."""


class ClaimLost(ExecutionsError):
    """This runner's claim on the execution expired and someone else took it over."""


class NodeFailed(ExecutionsError):
    """A node could not produce its output; the message is shown to the user."""


class InvalidTags(ExecutionsError):
    """An execution's tags break a rule of ``executions.tags``; the message names it."""


class FeedCursorInvalid(ExecutionsError):
    """A feed cursor is malformed, or was not given out by this database."""
