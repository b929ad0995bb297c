"""What this app asks of the push side, which registers it from its app's
``ready()`` (``realtime.apps``): the domain never imports ``realtime``.

Without a push side, ``after_pushes`` calls at once and the events endpoint
answers ``?wait=`` at once (``events_page_waiter`` is None).
"""

from collections.abc import Callable
from typing import Any, Protocol

from django.http import HttpResponseBase


class EventsPageWaiter(Protocol):
    def __call__(
        self, *, execution: Any, user_id: Any, after: int, wait: float, page: Callable[[], dict]
    ) -> HttpResponseBase:
        """A response whose body, ``page()``, is read once the execution has an event
        after ``after`` or ``wait`` seconds passed; raises ``TooManyWaiting``."""


AfterPushes = Callable[[Callable[[], object]], None]

_after_pushes: AfterPushes | None = None
_events_page_waiter: EventsPageWaiter | None = None


def push_side_register(*, after_pushes: AfterPushes, events_page_waiter: EventsPageWaiter) -> None:
    """Called once, from the push side's ``ready()``."""
    global _after_pushes, _events_page_waiter
    _after_pushes, _events_page_waiter = after_pushes, events_page_waiter


def after_pushes(fn: Callable[[], object]) -> None:
    """Call ``fn`` once the events published so far are on their way to this
    process's subscribers (at once when nothing is)."""
    if _after_pushes is None:
        fn()
    else:
        _after_pushes(fn)


def events_page_waiter() -> EventsPageWaiter | None:
    """How the events endpoint waits for an execution's next event, if it can."""
    return _events_page_waiter
