"""Pushes each new event to its execution's subscribers once its transaction commits,
and announces each ``status`` event (a creation, a change of state) to the
executions feeds (``realtime.feeds``), with the execution's state as it was
when the event was recorded."""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from executions.models import EventType, ExecutionEvent
from realtime.events import event_message
from realtime.feeds import announce_change, written_state
from realtime.publish import group_name_for, publish


@receiver(post_save, sender=ExecutionEvent, dispatch_uid="realtime.push_execution_event")
def push_execution_event(sender, instance: ExecutionEvent, created: bool, **kwargs) -> None:
    if created:
        # The state now: by the commit, the same transaction may have changed it again.
        state = written_state(instance) if instance.type == EventType.STATUS else None
        transaction.on_commit(partial(push_event, instance, state), robust=True)


def push_event(event: ExecutionEvent, state: dict | None = None) -> None:
    publish(
        group_name_for(event.execution_id),
        {"type": "execution.event", "event": event_message(event)},
    )
    if event.type == EventType.STATUS:
        announce_change(event, state)
