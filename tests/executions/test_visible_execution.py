"""The read every socket handshake makes: who may see the execution, and its state
as the snapshot shows it, in one query compiled once."""

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext

from executions.models import Execution
from executions.selectors import execution_visible_to, visible_execution_sql
from executions.wire import snapshot_message
from tests.factories import make_execution, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def execution(no_dispatch):
    return make_execution(make_user(), input_data={"big": "x" * 1000})


def test_the_owner_and_staff_see_it_and_nobody_else(execution):
    assert execution_visible_to(execution.owner, execution.id).id == execution.id
    assert execution_visible_to(make_user(staff=True), execution.id).id == execution.id
    assert execution_visible_to(make_user(), execution.id) is None
    assert execution_visible_to(AnonymousUser(), execution.id) is None
    assert execution_visible_to(execution.owner, uuid.uuid4()) is None


def test_it_reads_the_state_the_snapshot_shows_and_leaves_definition_and_input(execution):
    Execution.objects.filter(id=execution.id).update(
        status="running", progress=40, message="half way", last_seq=7, result={"n": [1, 2]}
    )
    read = execution_visible_to(execution.owner, execution.id)
    assert read.get_deferred_fields() == {"definition", "input_data"}
    full = Execution.objects.get(id=execution.id)
    with CaptureQueriesContext(connection) as queries:
        assert snapshot_message(read) == snapshot_message(full)
        assert (read.owner_id, read.is_finished) == (full.owner_id, full.is_finished)
    assert len(queries) == 0
    assert read.result == {"n": [1, 2]} and read.progress == 40


def test_it_is_one_query_compiled_once_per_kind_of_user(execution):
    staff = make_user(staff=True)
    visible_execution_sql.cache_clear()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            execution_visible_to(execution.owner, execution.id)
            execution_visible_to(staff, execution.id)
    assert len(queries) == 6
    assert visible_execution_sql.cache_info().misses == 2
    assert "ORDER BY" not in queries[0]["sql"]
