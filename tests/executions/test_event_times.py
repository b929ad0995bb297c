"""Events are dated by the database's clock as they are appended, not as their transaction began."""

import time
from datetime import timedelta

import pytest
from django.db import transaction

from executions.clock import locked_now
from executions.models import EventType
from executions.services.eventlog import event_append, locked
from tests.factories import make_execution, make_user, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_appended_later_in_its_transaction_is_dated_later():
    user = make_user()
    execution = make_execution(user, make_workflow(user))
    with transaction.atomic():
        row = locked(execution.id)
        time.sleep(0.2)  # the transaction's other statements, before the event's
        event = event_append(row, EventType.LOG, {"message": "late"})
        row.save(update_fields=["last_seq", "last_event_at"])

    assert event.created_at - locked_now(row) >= timedelta(seconds=0.2)
    assert event.created_at - locked_now(row) < timedelta(seconds=5)
