"""POST /api/v1/executions/batch: many executions in one request and one transaction."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from executions.api.serializers import ExecutionSerializer
from executions.models import EventType, Execution, ExecutionEvent
from executions.runners import get_runner
from executions.wire import event_message
from realtime.publish import group_name_for
from tests.conftest import bearer_client
from tests.factories import make_execution, make_user, make_workflow

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/executions/batch"


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    """What is pushed and dispatched, in order: ``("push", group, event)`` and
    ``("dispatch", execution_id)``."""
    happened: list[tuple] = []
    monkeypatch.setattr(
        "realtime.signals.publish_many",
        lambda messages: happened.extend(
            ("push", group, message["event"])
            for group, message in messages
            if message["type"] == "execution.event"
        ),
    )
    monkeypatch.setattr(
        get_runner(), "dispatch", lambda execution_id: happened.append(("dispatch", execution_id))
    )
    return happened


def items_for(workflow, count: int) -> list[dict]:
    return [{"workflow_id": str(workflow.id), "input_data": {"n": n}} for n in range(count)]


def test_a_batch_stores_every_item_in_order_and_answers_each_as_a_single_create(
    api, user, sent, django_capture_on_commit_callbacks
):
    first, second = make_workflow(user, name="a"), make_workflow(user, name="b")
    items = [
        {"workflow_id": str(first.id), "input_data": {"n": 0}},
        {"workflow_id": str(second.id)},
        {"workflow_id": str(first.id), "input_data": {"n": 2}},
    ]

    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(BATCH, {"items": items}, format="json")
        assert sent == []  # nothing leaves before the commit

    assert response.status_code == 201, response.json()
    results = response.json()["results"]
    stored = {e.id: e for e in Execution.objects.all()}
    assert {uuid.UUID(r["id"]) for r in results} == set(stored) and len(stored) == 3
    for item, result in zip(items, results, strict=True):
        execution = stored[uuid.UUID(result["id"])]
        assert result == ExecutionSerializer(execution).data
        assert result["workflow_id"] == item["workflow_id"]
        assert result["input_data"] == item.get("input_data", {})
        assert (result["status"], result["message"]) == ("pending", "Waiting to run")
        assert (
            execution.definition
            == (first if item["workflow_id"] == str(first.id) else second).definition
        )
        assert (execution.last_seq, execution.last_event_at) == (1, execution.dispatched_at)
        (event,) = ExecutionEvent.objects.filter(execution=execution)
        assert (event.seq, event.type, event.created_at) == (
            1,
            EventType.STATUS,
            execution.dispatched_at,
        )
        assert event.data["status"] == "pending"

    for callback in callbacks:
        callback()
    ids = [uuid.UUID(r["id"]) for r in results]
    # Every push first, in order, then every dispatch (which may wait for a broker).
    expected = []
    for execution_id in ids:
        event = ExecutionEvent.objects.get(execution_id=execution_id)
        expected += [("push", group_name_for(execution_id), event_message(event))]
    expected += [("dispatch", execution_id) for execution_id in ids]
    assert sent == expected


def test_a_batch_pushes_and_dispatches_what_as_many_single_creates_do(
    api, user, sent, django_capture_on_commit_callbacks
):
    workflow = make_workflow(user)
    with django_capture_on_commit_callbacks(execute=True):
        single = api.post("/api/v1/executions", items_for(workflow, 1)[0], format="json")
    singles, sent[:] = list(sent), []
    with django_capture_on_commit_callbacks(execute=True):
        batch = api.post(BATCH, {"items": items_for(workflow, 1)}, format="json")

    def shape(happened: list[tuple]) -> list[tuple]:
        """What was sent, without what differs between two executions."""
        return [
            (what[0], {k: v for k, v in what[-1].items() if k not in ("execution_id", "timestamp")})
            if what[0] == "push"
            else (what[0],)
            for what in happened
        ]

    assert shape(sent) == shape(singles)
    assert len(sent) == 2
    assert batch.json()["results"][0].keys() == single.json().keys()


def test_one_invalid_item_stores_nothing_and_names_each_items_errors(
    api, user, other_user, sent, django_capture_on_commit_callbacks
):
    workflow = make_workflow(user)
    theirs = make_workflow(other_user)
    items = [
        {"workflow_id": str(workflow.id)},
        {"workflow_id": str(theirs.id)},
        {"workflow_id": str(workflow.id), "input_data": [1]},
        "not an object",
        {"workflow_id": str(workflow.id)},
    ]

    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(BATCH, {"items": items}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert "3 of 5 items are invalid, so none was started" in body["detail"]
    results = body["results"]
    assert len(results) == 5
    assert results[0] == {} and results[4] == {}
    assert "you may not run it" in results[1]["workflow_id"][0]
    assert "input_data must be a JSON object" in results[2]["input_data"][0]
    assert results[3]
    assert (Execution.objects.count(), ExecutionEvent.objects.count()) == (0, 0)
    assert callbacks == [] and sent == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"items": []}, "may not be empty"),
        ({"items": {"workflow_id": "x"}}, "Expected a list"),
        ({}, "required"),
        ([{"workflow_id": "x"}], ""),
        ({"items": [{}] * 1001}, "Too many items: 1001, the limit is 1000 per batch"),
    ],
)
def test_a_malformed_batch_is_a_400_and_stores_nothing(api, user, body, says):
    response = api.post(BATCH, body, format="json")
    assert response.status_code == 400
    assert says in str(response.json())
    assert Execution.objects.count() == 0


def test_a_thousand_items_are_one_transaction_in_a_fixed_number_of_queries(api, user, settings):
    settings.EXECUTIONS_MAX_ACTIVE_PER_USER = 0
    settings.API_EXECUTION_CREATE_RATE = ""
    workflow = make_workflow(user)

    def queries(count: int) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            response = api.post(BATCH, {"items": items_for(workflow, count)}, format="json")
        assert response.status_code == 201
        return [q["sql"].split()[0].upper() for q in captured.captured_queries]

    few, many = queries(2), queries(1000)
    # The token, the workflows named (one query for all), the clock; then the
    # inserts, as many statements as the backend's bound on parameters needs.
    assert [kind for kind in few if kind not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")] == [
        "SELECT",
        "SELECT",
        "SELECT",
        "INSERT",
        "INSERT",
    ]
    assert many.count("SELECT") == 3
    assert many.count("BEGIN") + many.count("SAVEPOINT") <= 1
    assert len(many) < 60
    assert Execution.objects.count() == 1002
    assert ExecutionEvent.objects.count() == 1002


def test_a_batch_counts_as_that_many_creates_against_the_rate(api, user, settings):
    settings.API_EXECUTION_CREATE_RATE = "5/minute"
    workflow = make_workflow(user)

    assert api.post(BATCH, {"items": items_for(workflow, 3)}, format="json").status_code == 201
    assert (
        api.post("/api/v1/executions", items_for(workflow, 1)[0], format="json").status_code == 201
    )
    refused = api.post(BATCH, {"items": items_for(workflow, 2)}, format="json")
    assert refused.status_code == 429
    assert "at most 5 per minute (API_EXECUTION_CREATE_RATE)" in refused.json()["detail"]
    assert int(refused["Retry-After"]) > 0
    assert api.post(BATCH, {"items": items_for(workflow, 1)}, format="json").status_code == 201
    assert (
        api.post("/api/v1/executions", items_for(workflow, 1)[0], format="json").status_code == 429
    )
    assert Execution.objects.count() == 5


def test_a_batch_larger_than_the_rate_is_told_to_split(api, user, settings):
    settings.API_EXECUTION_CREATE_RATE = "5/minute"
    workflow = make_workflow(user)

    refused = api.post(BATCH, {"items": items_for(workflow, 6)}, format="json")

    assert refused.status_code == 429
    assert "Too many executions in one batch: 6" in refused.json()["detail"]
    assert "Split the batch" in refused.json()["detail"]
    assert Execution.objects.count() == 0
    # It took nothing from the allowance.
    assert api.post(BATCH, {"items": items_for(workflow, 5)}, format="json").status_code == 201


def test_a_batch_counts_against_the_active_cap_as_a_whole(api, user, settings):
    settings.EXECUTIONS_MAX_ACTIVE_PER_USER = 5
    workflow = make_workflow(user)
    make_execution(user, workflow)
    make_execution(user, workflow)

    refused = api.post(BATCH, {"items": items_for(workflow, 4)}, format="json")

    assert refused.status_code == 429
    detail = refused.json()["detail"]
    assert "you have 2 pending or running and asked for 4 more, the limit is 5" in detail
    assert "Start at most 3 now" in detail
    assert Execution.objects.count() == 2
    assert api.post(BATCH, {"items": items_for(workflow, 3)}, format="json").status_code == 201
    assert Execution.objects.count() == 5


def test_staff_may_batch_anyones_workflow_and_anonymous_users_none(staff_user, other_user):
    theirs = make_workflow(other_user)
    response = bearer_client(staff_user).post(BATCH, {"items": items_for(theirs, 2)}, format="json")
    assert response.status_code == 201
    assert Execution.objects.filter(owner=staff_user).count() == 2

    anonymous = APIClient().post(BATCH, {"items": items_for(theirs, 1)}, format="json")
    assert anonymous.status_code == 401
    assert Execution.objects.count() == 2


def test_by_default_one_user_may_start_a_burst_of_200_and_a_batch_of_1000(user):
    api = bearer_client(user)
    workflow = make_workflow(user)
    for _ in range(200):
        response = api.post("/api/v1/executions", items_for(workflow, 1)[0], format="json")
        assert response.status_code == 201, response.json()
    other = make_user()
    batch = bearer_client(other).post(
        BATCH, {"items": items_for(make_workflow(other), 1000)}, format="json"
    )
    assert batch.status_code == 201, batch.json()
    assert Execution.objects.count() == 1200
