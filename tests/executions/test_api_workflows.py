"""Workflows over REST: CRUD, definition validation and ownership."""

import re
import uuid

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from executions.models import Execution, Workflow
from tests.conftest import bearer_client
from tests.factories import chain, make_execution, make_workflow, node

pytestmark = pytest.mark.django_db

WORKFLOW_FIELDS = {
    "id",
    "name",
    "description",
    "definition",
    "retry_on_worker_loss",
    "created_at",
    "updated_at",
}
SLASHES = pytest.mark.parametrize("slash", ["", "/"])


def definition(*nodes: dict, edges: list | None = None) -> dict:
    return {"nodes": list(nodes), "edges": edges or []}


def edge(source: str, target: str) -> dict:
    return {"source": source, "target": target}


VALID = chain(node("wait", "delay", seconds=1), node("pick", "transform", expression="a.b"))


# --- create -----------------------------------------------------------------


@SLASHES
def test_create_workflow(api, user, slash):
    body = {"name": "greet", "description": "says hi", "definition": VALID}

    response = api.post(f"/api/v1/workflows{slash}", body, format="json")

    assert response.status_code == 201
    data = response.json()
    assert set(data) == WORKFLOW_FIELDS
    assert data["name"] == "greet"
    assert data["description"] == "says hi"
    assert data["definition"] == VALID
    workflow = Workflow.objects.get()
    assert str(workflow.id) == data["id"]
    assert workflow.owner == user
    assert workflow.definition == VALID


@pytest.mark.parametrize("retry", [True, False])
def test_create_workflow_with_retry_on_worker_loss(api, retry):
    body = {"name": "n", "definition": VALID, "retry_on_worker_loss": retry}

    response = api.post("/api/v1/workflows", body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["retry_on_worker_loss"] is retry
    assert Workflow.objects.get().retry_on_worker_loss is retry


def test_create_workflow_description_defaults_to_blank(api):
    response = api.post("/api/v1/workflows", {"name": "n", "definition": VALID}, format="json")

    assert response.status_code == 201
    assert response.json()["description"] == ""
    assert Workflow.objects.get().description == ""


def test_create_ignores_read_only_fields(api, user, other_user):
    chosen_id = uuid.uuid4()
    body = {
        "id": str(chosen_id),
        "name": "n",
        "definition": VALID,
        "owner": other_user.id,
        "created_at": "2000-01-01T00:00:00Z",
    }

    response = api.post("/api/v1/workflows", body, format="json")

    assert response.status_code == 201
    workflow = Workflow.objects.get()
    assert workflow.id != chosen_id
    assert workflow.owner == user
    assert workflow.created_at.year != 2000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"definition": VALID}, "name"),
        ({"name": "", "definition": VALID}, "name"),
        ({"name": "x" * 201, "definition": VALID}, "name"),
        ({"name": "n"}, "definition"),
        ({"name": "n", "definition": None}, "definition"),
    ],
)
def test_create_with_bad_field_is_400_naming_it(api, body, field):
    response = api.post("/api/v1/workflows", body, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {field}
    assert not Workflow.objects.exists()


def test_create_with_malformed_json_is_400(api):
    response = api.post("/api/v1/workflows", '{"name": "n",', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert not Workflow.objects.exists()


# --- definition validation ---------------------------------------------------


BAD_DEFINITIONS = {
    "not an object": (["a"], "definition must be a JSON object"),
    "no nodes key": ({"edges": []}, "definition.nodes must be a non-empty list"),
    "empty nodes": (definition(), "definition.nodes must be a non-empty list"),
    "nodes not a list": ({"nodes": {"a": 1}}, "definition.nodes must be a non-empty list"),
    "unknown top-level key": (
        {**definition(node("a", "delay", seconds=1)), "extra": 1},
        "unknown keys ['extra']",
    ),
    "node not an object": (definition("a"), "nodes[0] must be an object"),
    "node without id": ({"nodes": [{"type": "delay"}]}, "nodes[0].id must be a non-empty string"),
    "node id not a string": (definition(node(7, "log", message="m")), "nodes[0].id"),
    "duplicate node id": (
        definition(node("a", "delay", seconds=1), node("a", "log", message="m")),
        "node 'a': duplicate node id",
    ),
    "unknown node type": (
        definition(node("x", "sleep", seconds=1)),
        "node 'x': unknown type 'sleep'; "
        "known types: condition, delay, fail, http_request, log, transform.",
    ),
    "missing node type": ({"nodes": [{"id": "x", "params": {}}]}, "node 'x': unknown type None"),
    "unknown node key": (
        {"nodes": [{**node("a", "delay", seconds=1), "next": "b"}]},
        "node 'a': unknown keys ['next']",
    ),
    "params not an object": (
        {"nodes": [{"id": "w", "type": "delay", "params": [1]}]},
        "node 'w' (delay): params: must be a JSON object",
    ),
    "delay seconds string": (
        definition(node("w", "delay", seconds="5")),
        "node 'w' (delay): params.seconds: A valid number is required",
    ),
    "delay seconds negative": (
        definition(node("w", "delay", seconds=-1)),
        "node 'w' (delay): params.seconds: Ensure this value is greater than or equal to 0",
    ),
    "delay seconds too large": (
        definition(node("w", "delay", seconds=3601)),
        "node 'w' (delay): params.seconds: Ensure this value is less than or equal to 3600",
    ),
    "delay seconds bool": (
        definition(node("w", "delay", seconds=True)),
        "node 'w' (delay): params.seconds: A valid number is required",
    ),
    "delay seconds null": (definition(node("w", "delay", seconds=None)), "params.seconds"),
    "delay seconds missing": (
        definition(node("w", "delay")),
        "node 'w' (delay): params.seconds: This field is required",
    ),
    "delay unknown param": (
        definition(node("w", "delay", seconds=1, unit="ms")),
        "node 'w' (delay): params: unknown keys ['unit']; allowed: ['seconds']",
    ),
    "transform bad jmespath": (
        definition(node("t", "transform", expression="foo[")),
        "node 't' (transform): params.expression: not a valid JMESPath expression",
    ),
    "transform expression not a string": (
        definition(node("t", "transform", expression=5)),
        "node 't' (transform): params.expression",
    ),
    "transform expression blank": (
        definition(node("t", "transform", expression="")),
        "node 't' (transform): params.expression",
    ),
    "log bad level": (
        definition(node("l", "log", message="m", level="debug")),
        "node 'l' (log): params.level: \"debug\" is not a valid choice",
    ),
    "log message missing": (
        definition(node("l", "log", level="info")),
        "node 'l' (log): params.message: This field is required",
    ),
    "log message not a string": (
        definition(node("l", "log", message=3)),
        "node 'l' (log): params.message",
    ),
    "log unknown param": (
        definition(node("l", "log", message="m", colour="red")),
        "node 'l' (log): params: unknown keys ['colour']",
    ),
    "fail message missing": (
        definition(node("f", "fail")),
        "node 'f' (fail): params.message: This field is required",
    ),
    "edge to missing node": (
        definition(node("a", "delay", seconds=1), edges=[edge("a", "ghost")]),
        "edges[0]: 'ghost' is not a node of this workflow",
    ),
    "edge from missing node": (
        definition(node("a", "delay", seconds=1), edges=[edge("ghost", "a")]),
        "edges[0]: 'ghost' is not a node of this workflow",
    ),
    "edge without target": (
        definition(node("a", "delay", seconds=1), edges=[{"source": "a"}]),
        "edges[0] must be an object with exactly 'source' and 'target'",
    ),
    "edges not a list": (
        {"nodes": [node("a", "delay", seconds=1)], "edges": {"a": "b"}},
        "definition.edges must be a list",
    ),
    "duplicate edge": (
        definition(
            node("a", "delay", seconds=1),
            node("b", "delay", seconds=1),
            edges=[edge("a", "b"), edge("a", "b")],
        ),
        "edges[1]: duplicate edge a -> b",
    ),
}


@pytest.mark.parametrize(
    ("bad", "expected"), list(BAD_DEFINITIONS.values()), ids=list(BAD_DEFINITIONS)
)
def test_bad_definition_is_400_naming_the_mistake(api, built_in_registry, bad, expected):
    response = api.post("/api/v1/workflows", {"name": "n", "definition": bad}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"definition"}
    assert any(expected in message for message in body["definition"]), body
    assert not Workflow.objects.exists()


def test_every_mistake_is_reported_at_once(api):
    bad = definition(
        node("w", "delay", seconds="5"),
        node("t", "transform", expression="foo["),
        node("x", "nope"),
        edges=[edge("w", "ghost")],
    )

    response = api.post("/api/v1/workflows", {"name": "n", "definition": bad}, format="json")

    assert response.status_code == 400
    messages = response.json()["definition"]
    assert len(messages) == 4
    assert [m.split(":")[0] for m in messages] == [
        "node 'w' (delay)",
        "node 't' (transform)",
        "node 'x'",
        "edges[0]",
    ]


def _cycle_in(messages: list[str]) -> list[str]:
    (message,) = messages
    match = re.fullmatch(r"edges form a cycle: (.+); a workflow must be acyclic\.", message)
    assert match, message
    return match.group(1).split(" -> ")


def test_cycle_is_400_with_the_cycle_path(api):
    bad = definition(
        node("a", "delay", seconds=1),
        node("b", "delay", seconds=1),
        node("c", "delay", seconds=1),
        edges=[edge("a", "b"), edge("b", "c"), edge("c", "a")],
    )

    response = api.post("/api/v1/workflows", {"name": "n", "definition": bad}, format="json")

    assert response.status_code == 400
    path = _cycle_in(response.json()["definition"])
    assert "a -> b -> c -> a" in " -> ".join(path + path[1:])  # some rotation of the cycle
    assert len(path) == 4
    assert not Workflow.objects.exists()


def test_cycle_behind_a_root_names_only_the_cycle(api):
    bad = definition(
        node("root", "delay", seconds=1),
        node("x", "delay", seconds=1),
        node("y", "delay", seconds=1),
        node("after", "log", message="m"),
        edges=[edge("root", "x"), edge("x", "y"), edge("y", "x"), edge("y", "after")],
    )

    response = api.post("/api/v1/workflows", {"name": "n", "definition": bad}, format="json")

    assert response.status_code == 400
    path = _cycle_in(response.json()["definition"])
    assert path in (["x", "y", "x"], ["y", "x", "y"])


def test_self_loop_is_a_cycle(api):
    bad = definition(node("a", "delay", seconds=1), edges=[edge("a", "a")])

    response = api.post("/api/v1/workflows", {"name": "n", "definition": bad}, format="json")

    assert response.status_code == 400
    assert _cycle_in(response.json()["definition"]) == ["a", "a"]


@pytest.mark.parametrize("seconds", [0, 0.25, 1.5, 3600, 3599.999])
def test_delay_seconds_in_range_are_accepted(api, seconds):
    good = definition(node("w", "delay", seconds=seconds))

    response = api.post("/api/v1/workflows", {"name": "n", "definition": good}, format="json")

    assert response.status_code == 201, response.json()
    assert Workflow.objects.get().definition["nodes"][0]["params"]["seconds"] == seconds


def test_every_node_type_in_one_valid_dag(api):
    good = definition(
        node("start", "delay", seconds=0.1),
        node("left", "transform", expression="items[0]"),
        node("right", "log", message="hi", level="warning"),
        node("boom", "fail", message="stop"),
        node("quiet", "log", message=""),
        edges=[
            edge("start", "left"),
            edge("start", "right"),
            edge("left", "boom"),
            edge("right", "boom"),
        ],
    )

    response = api.post("/api/v1/workflows", {"name": "n", "definition": good}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["definition"] == good


# --- list and retrieve --------------------------------------------------------


@SLASHES
def test_list_shows_only_own_workflows_paginated(api, user, other_user, slash):
    mine = {make_workflow(user, name="one").id, make_workflow(user, name="two").id}
    make_workflow(other_user, name="theirs")

    response = api.get(f"/api/v1/workflows{slash}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert {uuid.UUID(w["id"]) for w in body["results"]} == mine
    assert all(set(w) == WORKFLOW_FIELDS for w in body["results"])


@SLASHES
def test_retrieve_workflow(api, user, slash):
    workflow = make_workflow(user, VALID, name="mine")

    response = api.get(f"/api/v1/workflows/{workflow.id}{slash}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == WORKFLOW_FIELDS
    assert body["id"] == str(workflow.id)
    assert body["name"] == "mine"
    assert body["definition"] == VALID


@pytest.mark.parametrize("workflow_id", [str(uuid.UUID(int=1)), "not-a-uuid"])
def test_retrieve_unknown_workflow_is_404(api, workflow_id):
    assert api.get(f"/api/v1/workflows/{workflow_id}").status_code == 404


# --- update -------------------------------------------------------------------


@SLASHES
def test_put_replaces_workflow(api, user, slash):
    workflow = make_workflow(user, name="old")
    before = workflow.updated_at
    new_definition = definition(node("only", "log", message="hello"))
    body = {"name": "new", "description": "d", "definition": new_definition}

    response = api.put(f"/api/v1/workflows/{workflow.id}{slash}", body, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "new"
    workflow.refresh_from_db()
    assert (workflow.name, workflow.description) == ("new", "d")
    assert workflow.definition == new_definition
    assert workflow.updated_at > before
    assert workflow.owner == user


@SLASHES
def test_patch_changes_only_given_fields(api, user, slash):
    workflow = make_workflow(user, VALID, name="old")

    response = api.patch(
        f"/api/v1/workflows/{workflow.id}{slash}", {"description": "new"}, format="json"
    )

    assert response.status_code == 200
    workflow.refresh_from_db()
    assert (workflow.name, workflow.description, workflow.definition) == ("old", "new", VALID)


def test_put_without_definition_is_400(api, user):
    workflow = make_workflow(user, VALID, name="old")

    response = api.put(f"/api/v1/workflows/{workflow.id}", {"name": "new"}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"definition"}
    workflow.refresh_from_db()
    assert workflow.name == "old"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_with_bad_definition_is_400_and_changes_nothing(api, user, method):
    workflow = make_workflow(user, VALID, name="old")
    bad = definition(node("w", "delay", seconds=-1))

    response = getattr(api, method)(
        f"/api/v1/workflows/{workflow.id}", {"name": "new", "definition": bad}, format="json"
    )

    assert response.status_code == 400
    assert "node 'w' (delay)" in response.json()["definition"][0]
    workflow.refresh_from_db()
    assert (workflow.name, workflow.definition) == ("old", VALID)


# --- delete -------------------------------------------------------------------


@SLASHES
def test_delete_unused_workflow(api, user, slash):
    workflow = make_workflow(user)
    kept = make_workflow(user, name="kept")

    response = api.delete(f"/api/v1/workflows/{workflow.id}{slash}")

    assert response.status_code == 204
    assert list(Workflow.objects.all()) == [kept]


def test_delete_workflow_with_executions_is_409_and_deletes_nothing(api, user):
    workflow = make_workflow(user)
    execution = make_execution(user, workflow)

    response = api.delete(f"/api/v1/workflows/{workflow.id}")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This workflow has executions and cannot be deleted; "
        "its executions are its history."
    }
    assert Workflow.objects.filter(id=workflow.id).exists()
    assert list(Execution.objects.all()) == [execution]
    assert execution.events.count() == 1


# --- ownership ----------------------------------------------------------------


def test_other_users_workflow_is_404_for_every_method(user, other_user):
    workflow = make_workflow(user, VALID, name="mine")
    intruder = bearer_client(other_user)
    url = f"/api/v1/workflows/{workflow.id}"
    body = {"name": "stolen", "definition": VALID}

    assert intruder.get(url).status_code == 404
    assert intruder.get(url + "/").status_code == 404
    assert intruder.put(url, body, format="json").status_code == 404
    assert intruder.patch(url, {"name": "stolen"}, format="json").status_code == 404
    assert intruder.delete(url).status_code == 404
    assert intruder.get("/api/v1/workflows").json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    workflow.refresh_from_db()
    assert workflow.name == "mine"
    assert workflow.owner == user


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("super", "super@example.com", "pass-word-123")


NOT_OWNER = (
    "Only this workflow's owner (or a superuser) may change or delete it; staff may read "
    "and run it. To change it, create a workflow of your own with its definition."
)
CHANGES = {
    "put": {"name": "changed", "definition": chain(node("only", "log", message="m"))},
    "patch": {"name": "changed"},
}


def change(client, method: str, workflow: Workflow):
    url = f"/api/v1/workflows/{workflow.id}"
    if method == "delete":
        return client.delete(url)
    return getattr(client, method)(url, CHANGES[method], format="json")


@pytest.mark.parametrize(("method", "ok"), [("put", 200), ("patch", 200), ("delete", 204)])
@pytest.mark.parametrize("actor", ["owner", "superuser", "staff owner"])
def test_owners_and_superusers_change_and_delete_workflows(
    user, staff_user, superuser, method, ok, actor
):
    owner = staff_user if actor == "staff owner" else user
    client = bearer_client(superuser if actor == "superuser" else owner)
    workflow = make_workflow(owner, VALID, name="mine")

    response = change(client, method, workflow)

    assert response.status_code == ok, response.content
    if method == "delete":
        assert not Workflow.objects.exists()
    else:
        workflow.refresh_from_db()
        assert (workflow.name, workflow.owner) == ("changed", owner)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_staff_who_do_not_own_a_workflow_get_403_and_change_nothing(user, staff_user, method):
    workflow = make_workflow(user, VALID, name="mine")
    before = Workflow.objects.values().get(id=workflow.id)

    response = change(bearer_client(staff_user), method, workflow)

    assert response.status_code == 403
    assert response.json() == {"detail": NOT_OWNER}
    assert Workflow.objects.values().get(id=workflow.id) == before


def test_staff_may_still_read_list_and_run_every_workflow(user, other_user, staff_user):
    ids = {make_workflow(user).id, make_workflow(other_user).id}
    staff = bearer_client(staff_user)
    target = next(iter(ids))

    listed = staff.get("/api/v1/workflows").json()
    read = staff.get(f"/api/v1/workflows/{target}")
    run = staff.post("/api/v1/executions", {"workflow_id": str(target)}, format="json")

    assert {uuid.UUID(w["id"]) for w in listed["results"]} == ids
    assert read.status_code == 200
    assert run.status_code == 201


def test_a_bad_body_from_staff_who_do_not_own_the_workflow_is_403_not_400(user, staff_user):
    workflow = make_workflow(user, VALID, name="mine")
    url = f"/api/v1/workflows/{workflow.id}"

    response = bearer_client(staff_user).put(url, {"definition": None}, format="json")

    assert response.status_code == 403
    workflow.refresh_from_db()
    assert workflow.definition == VALID


def test_workflow_created_by_staff_belongs_to_staff(staff_user, user):
    response = bearer_client(staff_user).post(
        "/api/v1/workflows", {"name": "n", "definition": VALID}, format="json"
    )

    assert response.status_code == 201
    assert Workflow.objects.get().owner == staff_user
    assert bearer_client(user).get(f"/api/v1/workflows/{response.json()['id']}").status_code == 404


def test_unauthenticated_client_cannot_create(user):
    response = APIClient().post(
        "/api/v1/workflows", {"name": "n", "definition": VALID}, format="json"
    )

    assert response.status_code == 401
    assert not Workflow.objects.exists()
