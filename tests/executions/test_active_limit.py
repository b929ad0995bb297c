"""The cap on one user's pending and running executions holds under concurrent creates."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from executions import services
from executions.exceptions import TooManyActiveExecutions
from executions.models import Execution
from tests.factories import make_execution, make_user, make_workflow

# PostgreSQL's row locks are the point (SQLite's writers take turns on one
# lock, executions/sqlite, so two creates never overlap there).
pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_dispatch"),
]


def waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def test_two_creates_at_one_below_the_cap_do_not_both_pass(settings):
    assert connection.vendor == "postgresql"
    settings.EXECUTIONS_MAX_ACTIVE_PER_USER = 2
    user = make_user()
    workflow = make_workflow(user)
    make_execution(user, workflow)
    second: dict = {}
    ended = threading.Event()

    def create_in_another_transaction() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                second["pid"] = cursor.fetchone()[0]
            services.execution_create(owner=user, workflow=workflow, input_data={})
            second["outcome"] = "created"
        except TooManyActiveExecutions:
            second["outcome"] = "refused"
        finally:
            connections.close_all()
            ended.set()

    with transaction.atomic():
        services.execution_create(owner=user, workflow=workflow, input_data={})
        other = threading.Thread(target=create_in_another_transaction)
        other.start()
        # Until this transaction commits, the other create must wait for it (or, if
        # it does not wait, it has counted without seeing this one).
        deadline = time.monotonic() + 30
        while not ended.is_set() and not ("pid" in second and waiting_on_a_lock(second["pid"])):
            assert time.monotonic() < deadline, "the other create neither ended nor waited"
            time.sleep(0.01)
    other.join(30)

    assert second["outcome"] == "refused"
    assert Execution.objects.filter(owner=user).count() == 2
