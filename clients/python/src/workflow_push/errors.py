"""What the client raises: every exception is a ``WorkflowPushError``."""

from typing import Any


class WorkflowPushError(Exception):
    """The base of the client's exceptions; never raised itself."""


class ApiError(WorkflowPushError):
    """The server answered a REST call with an error status.

    ``status`` is the HTTP status, ``detail`` the server's explanation (its JSON
    ``detail``, or the whole JSON body for validation errors: ``{"field": [...]}``),
    ``code`` the socket close code the server gave with it, if any, and
    ``retry_after`` the seconds a 429 or 503 asks to wait, if it says.
    """

    def __init__(
        self,
        method: str,
        url: str,
        status: int,
        detail: Any,
        *,
        code: int | None = None,
        retry_after: float | None = None,
    ):
        self.method = method
        self.url = url
        self.status = status
        self.detail = detail
        self.code = code
        self.retry_after = retry_after
        super().__init__(f"{method} {url} answered {status}: {detail}")


class Unreachable(WorkflowPushError):
    """A REST call got no answer: the server could not be reached, or did not answer in time."""


class StreamError(WorkflowPushError):
    """Following an execution stopped before its terminal event; never raised itself."""


class StreamRefused(StreamError):
    """The server refused the stream for good: ``code`` is its close code (4400 a bad
    ``last_seq``, 4401 not authenticated, 4403 forbidden, 4404 no such execution or not
    yours) and ``reason`` what the server said. Trying again cannot help."""

    def __init__(self, code: int, reason: str):
        self.code = code
        self.reason = reason
        super().__init__(f"The server refused the stream ({code}): {reason}")


class StreamLost(StreamError):
    """No transport could be opened, ``attempts`` rounds in a row; ``reason`` is the last
    failure. Raise ``FollowOptions.retries`` (or set it to None) to try for longer."""

    def __init__(self, attempts: int, reason: str):
        self.attempts = attempts
        self.reason = reason
        super().__init__(f"Could not follow the execution after {attempts} attempts: {reason}")
