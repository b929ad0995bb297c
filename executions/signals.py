"""The executions app's one signal."""

from django.dispatch import Signal

event_recorded = Signal()
"""Sent by the event log (``executions.services.eventlog.event_stored``) once
for every event it stores, by a single write or in a batch alike, inside the
storing transaction, with ``event`` (the stored ``ExecutionEvent``) and
``using`` (the database alias). A receiver that acts once the event is
committed registers ``transaction.on_commit`` itself."""
