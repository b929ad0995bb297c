"""Executions over REST: create, list with filters, retrieve, ownership.

These tests run inside a transaction that is never committed, so the
``on_commit`` dispatch never fires and created executions stay ``pending``.
"""

import uuid
from datetime import datetime

import pytest
from rest_framework.pagination import PageNumberPagination

from executions import services, wire
from executions.models import EventType, Execution, ExecutionEvent, ExecutionStatus
from tests.conftest import bearer_client
from tests.factories import chain, make_execution, make_workflow, node

pytestmark = pytest.mark.django_db

EXECUTION_FIELDS = {
    "id",
    "workflow_id",
    "status",
    "progress",
    "message",
    "input_data",
    "result",
    "error",
    "execution_time",
    "created_at",
    "started_at",
    "finished_at",
    "tags",
}
SLASHES = pytest.mark.parametrize("slash", ["", "/"])


def ids_of(response) -> set[uuid.UUID]:
    return {uuid.UUID(item["id"]) for item in response.json()["results"]}


def completed(execution: Execution, result=None) -> Execution:
    services.execution_start(execution_id=execution.id)
    return services.execution_complete(execution_id=execution.id, result=result)


def failed(execution: Execution) -> Execution:
    services.execution_start(execution_id=execution.id)
    return services.execution_fail(execution_id=execution.id, error="node 'x': broke")


# --- create -------------------------------------------------------------------


@SLASHES
def test_create_returns_201_with_exactly_the_documented_fields(api, user, slash):
    workflow = make_workflow(user)
    body = {"workflow_id": str(workflow.id), "input_data": {"x": [1, 2], "y": {"z": None}}}

    response = api.post(f"/api/v1/executions{slash}", body, format="json")

    assert response.status_code == 201
    data = response.json()
    assert set(data) == EXECUTION_FIELDS
    execution = Execution.objects.get()
    assert data["id"] == str(execution.id)
    assert data["workflow_id"] == str(workflow.id)
    assert data["status"] == "pending"
    assert data["progress"] == 0
    assert data["message"] == execution.message
    assert isinstance(data["message"], str)
    assert data["message"]
    assert data["input_data"] == {"x": [1, 2], "y": {"z": None}}
    assert data["result"] is None
    assert data["error"] is None
    assert data["execution_time"] is None
    assert datetime.fromisoformat(data["created_at"]) == execution.created_at
    assert data["started_at"] is None
    assert data["finished_at"] is None


def test_create_stores_the_execution_for_the_caller(api, user):
    workflow = make_workflow(user)

    api.post("/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json")

    execution = Execution.objects.get()
    assert execution.owner == user
    assert execution.workflow == workflow
    assert execution.status == ExecutionStatus.PENDING
    assert execution.input_data == {}


def test_input_data_defaults_to_empty_object(api, user):
    workflow = make_workflow(user)

    response = api.post("/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json")

    assert response.status_code == 201
    assert response.json()["input_data"] == {}


def test_create_records_exactly_one_pending_status_event(api, user):
    workflow = make_workflow(user)

    response = api.post("/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json")

    execution = Execution.objects.get(id=response.json()["id"])
    (event,) = ExecutionEvent.objects.filter(execution=execution)
    assert event.seq == 1
    assert event.type == EventType.STATUS
    assert event.data["status"] == "pending"
    assert event.data["progress"] == 0
    assert event.data == wire.state_data(execution)
    assert execution.last_seq == 1
    assert execution.last_event_at == event.created_at


def test_created_execution_does_not_start_inside_an_uncommitted_transaction(api, user):
    workflow = make_workflow(user)

    response = api.post("/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json")

    execution_id = response.json()["id"]
    assert api.get(f"/api/v1/executions/{execution_id}").json()["status"] == "pending"
    assert Execution.objects.get(id=execution_id).started_at is None


def test_create_ignores_read_only_fields(api, user):
    workflow = make_workflow(user)
    body = {
        "workflow_id": str(workflow.id),
        "status": "completed",
        "progress": 100,
        "result": {"forged": True},
        "id": str(uuid.UUID(int=7)),
    }

    response = api.post("/api/v1/executions", body, format="json")

    assert response.status_code == 201
    execution = Execution.objects.get()
    assert execution.id != uuid.UUID(int=7)
    assert (execution.status, execution.progress, execution.result) == ("pending", 0, None)


def test_two_posts_make_two_executions(api, user):
    workflow = make_workflow(user)
    body = {"workflow_id": str(workflow.id)}

    first = api.post("/api/v1/executions", body, format="json").json()
    second = api.post("/api/v1/executions/", body, format="json").json()

    assert first["id"] != second["id"]
    assert Execution.objects.count() == 2
    assert ExecutionEvent.objects.filter(seq=1).count() == 2


# --- create: bad input ----------------------------------------------------------


def _assert_nothing_stored():
    assert not Execution.objects.exists()
    assert not ExecutionEvent.objects.exists()


@pytest.mark.parametrize(
    ("input_data", "type_name"),
    [([1, 2], "list"), ("text", "str"), (5, "int"), (1.5, "float"), (True, "bool")],
)
def test_non_object_input_data_is_400(api, user, input_data, type_name):
    workflow = make_workflow(user)
    body = {"workflow_id": str(workflow.id), "input_data": input_data}

    response = api.post("/api/v1/executions", body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "input_data": [f"input_data must be a JSON object, not {type_name}."]
    }
    _assert_nothing_stored()


def test_null_input_data_is_400(api, user):
    workflow = make_workflow(user)
    body = {"workflow_id": str(workflow.id), "input_data": None}

    response = api.post("/api/v1/executions", body, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"input_data"}
    _assert_nothing_stored()


def test_unknown_workflow_is_400(api):
    unknown = uuid.uuid4()

    response = api.post("/api/v1/executions", {"workflow_id": str(unknown)}, format="json")

    assert response.status_code == 400
    (message,) = response.json()["workflow_id"]
    assert str(unknown) in message
    assert "does not exist" in message
    _assert_nothing_stored()


def test_someone_elses_workflow_is_400_like_an_unknown_one(api, other_user):
    foreign = make_workflow(other_user)
    unknown = uuid.uuid4()

    response = api.post("/api/v1/executions", {"workflow_id": str(foreign.id)}, format="json")
    unknown_response = api.post("/api/v1/executions", {"workflow_id": str(unknown)}, format="json")

    assert response.status_code == 400
    (message,) = response.json()["workflow_id"]
    (unknown_message,) = unknown_response.json()["workflow_id"]
    # Same answer as for an id that does not exist, so ids can't be probed.
    assert message == unknown_message.replace(str(unknown), str(foreign.id))
    _assert_nothing_stored()


@pytest.mark.parametrize(
    "raw",
    ['{"workflow_id": ', "not json", "{'workflow_id': 'single quotes'}", '{"input_data": NaN}'],
)
def test_malformed_json_is_400(api, raw):
    response = api.post("/api/v1/executions", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    _assert_nothing_stored()


@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "42"])
def test_non_object_body_is_400(api, raw):
    response = api.post("/api/v1/executions", raw, content_type="application/json")

    assert response.status_code == 400
    (message,) = response.json()["non_field_errors"]
    assert "Expected a dictionary" in message
    _assert_nothing_stored()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "This field is required."),
        ({"input_data": {}}, "This field is required."),
        ({"workflow_id": None}, "This field may not be null."),
        ({"workflow_id": "not-a-uuid"}, "Must be a valid UUID."),
        ({"workflow_id": 12}, "Must be a valid UUID."),
        ({"workflow_id": ["00000000-0000-0000-0000-000000000001"]}, "Must be a valid UUID."),
        ({"workflow_id": ""}, "Must be a valid UUID."),
    ],
)
def test_missing_or_malformed_workflow_id_is_400(api, user, body, message):
    make_workflow(user)

    response = api.post("/api/v1/executions", body, format="json")

    assert response.status_code == 400
    assert response.json() == {"workflow_id": [message]}
    _assert_nothing_stored()


# --- list -----------------------------------------------------------------------


@SLASHES
def test_list_is_paginated_and_shows_own_executions(api, user, other_user, slash):
    mine = {make_execution(user).id for _ in range(3)}
    make_execution(other_user)

    response = api.get(f"/api/v1/executions{slash}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3
    assert (body["next"], body["previous"]) == (None, None)
    assert ids_of(response) == mine
    assert all(set(item) == EXECUTION_FIELDS for item in body["results"])


def test_list_pages_through_every_execution_once(api, user, monkeypatch):
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    workflow = make_workflow(user)
    created = {make_execution(user, workflow).id for _ in range(5)}

    seen: list[uuid.UUID] = []
    url = "/api/v1/executions"
    pages = 0
    while url:
        body = api.get(url).json()
        assert body["count"] == 5
        seen += [uuid.UUID(item["id"]) for item in body["results"]]
        url = body["next"]
        pages += 1

    assert pages == 3
    assert len(seen) == 5
    assert set(seen) == created


def test_list_page_size_is_50(api, user):
    workflow = make_workflow(user)
    for _ in range(51):
        make_execution(user, workflow)

    first = api.get("/api/v1/executions").json()
    second = api.get("/api/v1/executions?page=2").json()

    assert first["count"] == 51
    assert len(first["results"]) == 50
    assert first["next"].endswith("page=2")
    assert len(second["results"]) == 1
    assert second["next"] is None


def test_list_newest_first(api, user):
    workflow = make_workflow(user)
    executions = [make_execution(user, workflow) for _ in range(3)]

    response = api.get("/api/v1/executions")

    assert [item["id"] for item in response.json()["results"]] == [
        str(e.id) for e in reversed(executions)
    ]


@SLASHES
def test_filter_by_status(api, user, slash):
    pending = make_execution(user)
    done = completed(make_execution(user), result={"ok": True})
    broken = failed(make_execution(user))

    def listed(status):
        return ids_of(api.get(f"/api/v1/executions{slash}?status={status}"))

    assert listed("pending") == {pending.id}
    assert listed("completed") == {done.id}
    assert listed("failed") == {broken.id}
    assert listed("running") == set()
    item = api.get("/api/v1/executions?status=completed").json()["results"][0]
    assert (item["status"], item["progress"], item["result"]) == ("completed", 100, {"ok": True})
    assert item["started_at"] is not None
    assert item["finished_at"] is not None
    assert isinstance(item["execution_time"], float)


def test_filter_by_workflow(api, user):
    first, second = make_workflow(user), make_workflow(user)
    in_first = {make_execution(user, first).id for _ in range(2)}
    in_second = {make_execution(user, second).id}

    assert ids_of(api.get(f"/api/v1/executions?workflow={first.id}")) == in_first
    assert ids_of(api.get(f"/api/v1/executions/?workflow={second.id}")) == in_second
    assert ids_of(api.get(f"/api/v1/executions?workflow={uuid.uuid4()}")) == set()


def test_filter_by_status_and_workflow_together(api, user):
    first, second = make_workflow(user), make_workflow(user)
    target = completed(make_execution(user, first))
    make_execution(user, first)
    completed(make_execution(user, second))

    response = api.get(f"/api/v1/executions?status=completed&workflow={first.id}")

    assert ids_of(response) == {target.id}
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("status=PENDING", "status"),
        ("workflow=not-a-uuid", "workflow"),
        ("workflow=12", "workflow"),
    ],
)
def test_bad_filter_value_is_400_naming_it(api, user, query, field):
    make_execution(user)

    response = api.get(f"/api/v1/executions?{query}")

    assert response.status_code == 400
    assert set(response.json()) == {field}


def test_empty_filter_values_mean_no_filter(api, user):
    # What a browsable-API or HTML form sends for a filter left blank.
    everything = {make_execution(user).id, completed(make_execution(user)).id}

    response = api.get("/api/v1/executions?status=&workflow=")

    assert response.status_code == 200
    assert ids_of(response) == everything


def test_filter_by_someone_elses_workflow_shows_nothing(api, other_user):
    foreign = make_workflow(other_user)
    make_execution(other_user, foreign)

    response = api.get(f"/api/v1/executions?workflow={foreign.id}")

    assert response.status_code == 200
    assert response.json()["count"] == 0


# --- retrieve -------------------------------------------------------------------


@SLASHES
def test_retrieve_execution(api, user, slash):
    execution = make_execution(user, input_data={"a": 1})

    response = api.get(f"/api/v1/executions/{execution.id}{slash}")

    assert response.status_code == 200
    data = response.json()
    assert set(data) == EXECUTION_FIELDS | {"definition", "nodes", "runs"}
    assert data["id"] == str(execution.id)
    assert data["workflow_id"] == str(execution.workflow_id)
    assert (data["status"], data["input_data"]) == ("pending", {"a": 1})
    assert data["nodes"] == []  # a node's state is stored once the execution starts
    assert data["runs"] == []  # and a run once a runner claims it


def test_retrieve_shows_the_definition_the_execution_runs_not_the_edited_one(api, user):
    created_with = chain(node("first", "transform", expression="a"))
    workflow = make_workflow(user, created_with)
    execution = make_execution(user, workflow)
    edited = chain(node("second", "log", message="m"))
    api.patch(f"/api/v1/workflows/{workflow.id}", {"definition": edited}, format="json")

    data = api.get(f"/api/v1/executions/{execution.id}").json()
    rerun = api.post("/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json")

    assert data["definition"] == created_with
    assert Execution.objects.get(id=execution.id).definition == created_with
    # A new execution (what "Run again" makes) takes the workflow's current definition.
    assert rerun.status_code == 201
    assert api.get(f"/api/v1/executions/{rerun.json()['id']}").json()["definition"] == edited


def test_retrieve_failed_execution_shows_error(api, user):
    execution = failed(make_execution(user))

    data = api.get(f"/api/v1/executions/{execution.id}").json()

    assert data["status"] == "failed"
    assert data["error"] == "node 'x': broke"
    assert data["result"] is None


@pytest.mark.parametrize("execution_id", [str(uuid.UUID(int=1)), "not-a-uuid"])
def test_retrieve_unknown_execution_is_404(api, execution_id):
    assert api.get(f"/api/v1/executions/{execution_id}").status_code == 404


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_executions_cannot_be_changed_or_deleted(api, user, method):
    execution = make_execution(user)

    response = getattr(api, method)(
        f"/api/v1/executions/{execution.id}", {"status": "completed"}, format="json"
    )

    assert response.status_code == 405
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.PENDING


# --- ownership ------------------------------------------------------------------


def test_other_users_execution_is_404_and_not_listed(user, other_user):
    execution = make_execution(user)
    intruder = bearer_client(other_user)

    assert intruder.get(f"/api/v1/executions/{execution.id}").status_code == 404
    assert intruder.get(f"/api/v1/executions/{execution.id}/").status_code == 404
    assert intruder.get("/api/v1/executions").json()["count"] == 0
    assert intruder.get("/api/v1/executions?status=pending").json()["count"] == 0


def test_staff_see_every_execution(user, other_user, staff_user):
    everyone = {make_execution(user).id, make_execution(other_user).id}
    staff = bearer_client(staff_user)

    assert ids_of(staff.get("/api/v1/executions")) == everyone
    for execution_id in everyone:
        assert staff.get(f"/api/v1/executions/{execution_id}").status_code == 200


def test_staff_may_run_someone_elses_workflow(user, staff_user):
    workflow = make_workflow(user)

    response = bearer_client(staff_user).post(
        "/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json"
    )

    assert response.status_code == 201
    execution = Execution.objects.get()
    assert execution.owner == staff_user
    assert execution.workflow == workflow
    # The run belongs to the staff member, not to the workflow's owner.
    assert bearer_client(user).get(f"/api/v1/executions/{execution.id}").status_code == 404


# --- the cap on active executions -------------------------------------------------


@pytest.fixture
def cap_of_two(settings):
    settings.EXECUTIONS_MAX_ACTIVE_PER_USER = 2


def start(client, workflow):
    return client.post("/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json")


def assert_refused_at_the_cap(response, active: int, limit: int) -> None:
    assert response.status_code == 429
    assert "Retry-After" not in response
    assert response.json() == {
        "detail": f"Too many active executions: you have {active} pending or running, "
        f"the limit is {limit} per user (EXECUTIONS_MAX_ACTIVE_PER_USER). Wait for one "
        "to finish, or cancel one, then start this again."
    }


@pytest.mark.usefixtures("cap_of_two")
def test_past_the_cap_a_create_is_429_and_stores_nothing(api, user):
    workflow = make_workflow(user)
    pending = make_execution(user, workflow)
    running = make_execution(user, workflow)
    services.execution_start(execution_id=running.id)
    events = ExecutionEvent.objects.count()

    response = start(api, workflow)

    assert_refused_at_the_cap(response, active=2, limit=2)
    assert set(Execution.objects.values_list("id", flat=True)) == {pending.id, running.id}
    assert ExecutionEvent.objects.count() == events


@pytest.mark.usefixtures("cap_of_two")
@pytest.mark.parametrize("ending", ["complete", "fail", "cancel"])
def test_an_execution_that_ends_lets_the_next_one_in(api, user, ending):
    workflow = make_workflow(user)
    first, _ = make_execution(user, workflow), make_execution(user, workflow)
    assert start(api, workflow).status_code == 429
    if ending == "cancel":
        services.execution_cancel(execution_id=first.id, requested_by=user)
    else:
        services.execution_start(execution_id=first.id)
        services.execution_finish(
            execution_id=first.id, status={"complete": "completed", "fail": "failed"}[ending]
        )

    response = start(api, workflow)

    assert response.status_code == 201
    assert Execution.objects.filter(owner=user).count() == 3
    assert start(api, workflow).status_code == 429


@pytest.mark.usefixtures("cap_of_two")
def test_the_cap_is_per_user_and_counts_staff_too(user, other_user, staff_user):
    workflow = make_workflow(user)
    for _ in range(2):
        make_execution(user, workflow)
        make_execution(staff_user, workflow)

    assert start(bearer_client(other_user), make_workflow(other_user)).status_code == 201
    assert_refused_at_the_cap(start(bearer_client(staff_user), workflow), active=2, limit=2)
    assert_refused_at_the_cap(start(bearer_client(user), workflow), active=2, limit=2)
    assert Execution.objects.count() == 5


def test_a_cap_of_zero_means_no_cap(api, user, settings):
    settings.EXECUTIONS_MAX_ACTIVE_PER_USER = 0
    workflow = make_workflow(user)

    responses = [start(api, workflow) for _ in range(5)]

    assert [r.status_code for r in responses] == [201] * 5


def test_the_default_cap_is_1000(api, user):
    workflow = make_workflow(user)
    services.executions_create(owner=user, items=[(workflow, {})] * 1000)

    assert_refused_at_the_cap(start(api, workflow), active=1000, limit=1000)
    assert Execution.objects.count() == 1000
