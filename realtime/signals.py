"""Pushes each new event to its execution's subscribers once its transaction commits,
and announces each ``status`` event (a creation, a change of state) to the
executions feeds (``realtime.feeds``), with the execution's state as it was
when the event was recorded.

The events one transaction stores go out together, in order, in one publish
(``realtime.publish.publish_many``): one round trip to Redis for a batch of
creations instead of two per execution, each of which would wait for the
process's other threads to give back the GIL.
"""

from django.db import transaction
from django.dispatch import receiver

from executions.models import EventType, ExecutionEvent
from executions.signals import event_recorded
from executions.wire import event_message
from realtime.feeds import change_announcement, written_state
from realtime.publish import group_name_for, publish_many

# How far back among a transaction's commit callbacks its open batch is looked
# for: past that, a new batch (correct, only less grouped).
LOOK_BACK = 8


class Pushes(list):
    """The events stored in one transaction (within one set of savepoints), with
    their announced states; ``send`` is its commit callback."""

    def send(self) -> None:
        messages = []
        for event, state in self:
            message = {"type": "execution.event", "event": event_message(event)}
            messages.append((group_name_for(event.execution_id), message))
            if event.type == EventType.STATUS:
                messages.append(change_announcement(event, state))
        publish_many(messages)


@receiver(event_recorded, dispatch_uid="realtime.push_execution_event")
def push_execution_event(sender, event: ExecutionEvent, using: str, **kwargs) -> None:
    # The state now: by the commit, the same transaction may have changed it again.
    state = written_state(event) if event.type == EventType.STATUS else None
    pushes = open_pushes(using)
    if pushes is not None:
        pushes.append((event, state))
    else:
        pushes = Pushes([(event, state)])
        transaction.on_commit(pushes.send, using=using, robust=True)


def open_pushes(using: str | None) -> Pushes | None:
    """The batch this transaction's latest events joined, if its commit callback
    is still pending among the last ones and was registered under the same
    savepoints (a rollback of one of them drops the callback and its events)."""
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return None
    savepoints = set(connection.savepoint_ids)
    for sids, callback, _ in reversed(connection.run_on_commit[-LOOK_BACK:]):
        pushes = getattr(callback, "__self__", None)
        if isinstance(pushes, Pushes):
            return pushes if sids == savepoints else None
    return None
