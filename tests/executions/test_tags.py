"""Execution tags: given at creation, checked, shown everywhere, filtered on."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from executions import services
from executions.clock import database_now
from executions.exceptions import InvalidTags
from executions.models import Execution, ExecutionTag
from executions.services.retention import executions_prune
from executions.tags import tags_clean
from tests.factories import make_user, make_workflow

pytestmark = pytest.mark.django_db

EXECUTIONS = "/api/v1/executions"
CHANGELIST = "/admin/executions/execution/"


@pytest.fixture
def workflow(user):
    return make_workflow(user)


def create(api, workflow, **body):
    return api.post(EXECUTIONS, {"workflow_id": str(workflow.id), **body}, format="json")


def tagged(owner: User, workflow, *tags: str) -> Execution:
    return services.execution_create(owner=owner, workflow=workflow, input_data={}, tags=tags)


def test_tags_are_stored_in_order_once_each_and_answered(api, workflow):
    response = create(api, workflow, tags=["nightly", "team-a", "nightly"])

    assert response.status_code == 201
    assert response.json()["tags"] == ["nightly", "team-a"]
    execution = Execution.objects.get()
    assert execution.tags == ["nightly", "team-a"]
    assert sorted(execution.tag_rows.values_list("tag", flat=True)) == ["nightly", "team-a"]


def test_without_tags_an_execution_has_none(api, workflow):
    response = create(api, workflow)

    assert response.status_code == 201
    assert response.json()["tags"] == []
    assert not ExecutionTag.objects.exists()


@pytest.mark.parametrize(
    ("tags", "says"),
    [
        ("nightly", "tags must be a list of strings"),
        ({"a": 1}, "tags must be a list of strings"),
        ([f"t{n}" for n in range(11)], "Too many tags: 11; an execution takes at most 10 tags"),
        (["ok", 7], "Tag 2 must be a string of 1 to 64 characters, not int."),
        (["ok", None], "Tag 2 must be a string of 1 to 64 characters, not NoneType."),
        ([""], "Tag 1 is 0 characters long; a tag is 1 to 64 characters."),
        (["x" * 65], "Tag 1 is 65 characters long; a tag is 1 to 64 characters."),
    ],
)
def test_invalid_tags_are_a_400_that_names_the_rule(api, workflow, tags, says):
    response = create(api, workflow, tags=tags)

    assert response.status_code == 400
    assert says in response.json()["tags"][0]
    assert not Execution.objects.exists()


def test_ten_tags_of_64_characters_are_accepted(api, workflow):
    tags = [f"{n}".ljust(64, "x") for n in range(10)]

    response = create(api, workflow, tags=tags)

    assert response.status_code == 201
    assert response.json()["tags"] == tags


def test_eleven_tags_are_refused_even_when_one_repeats():
    # The count is a bound on what is looked at, checked before anything else.
    with pytest.raises(InvalidTags, match="Too many tags: 11"):
        tags_clean(["a"] * 11)


def test_the_service_refuses_invalid_tags_before_storing_anything(user, workflow):
    with pytest.raises(InvalidTags, match="Tag 1 is 65 characters long"):
        tagged(user, workflow, "x" * 65)

    assert not Execution.objects.exists()


def test_each_batch_item_takes_its_own_tags(api, workflow):
    items = [
        {"workflow_id": str(workflow.id), "tags": ["a", "b"]},
        {"workflow_id": str(workflow.id)},
        {"workflow_id": str(workflow.id), "tags": ["b"]},
    ]

    response = api.post(f"{EXECUTIONS}/batch", {"items": items}, format="json")

    assert response.status_code == 201
    assert [item["tags"] for item in response.json()["results"]] == [["a", "b"], [], ["b"]]
    assert ExecutionTag.objects.filter(tag="b").count() == 2


def test_a_batch_item_with_invalid_tags_fails_the_batch_and_is_named(api, workflow):
    items = [{"workflow_id": str(workflow.id)}, {"workflow_id": str(workflow.id), "tags": [1]}]

    response = api.post(f"{EXECUTIONS}/batch", {"items": items}, format="json")

    assert response.status_code == 400
    results = response.json()["results"]
    assert results[0] == {}
    assert "Tag 1 must be a string" in results[1]["tags"][0]
    assert not Execution.objects.exists()


def test_the_list_filters_by_tag_and_the_detail_shows_tags(api, user, workflow):
    nightly = tagged(user, workflow, "nightly", "team-a")
    tagged(user, workflow, "team-a")
    tagged(user, workflow)

    listed = api.get(EXECUTIONS, {"tag": "nightly"}).json()["results"]
    team = api.get(EXECUTIONS, {"tag": "team-a"}).json()["results"]
    detail = api.get(f"{EXECUTIONS}/{nightly.id}").json()

    assert [item["id"] for item in listed] == [str(nightly.id)]
    assert len(team) == 2
    assert api.get(EXECUTIONS, {"tag": "none-such"}).json()["results"] == []
    assert detail["tags"] == ["nightly", "team-a"]


def test_the_tag_filter_keeps_to_what_the_user_may_see(api, user, workflow, other_user):
    tagged(other_user, make_workflow(other_user), "nightly")

    assert api.get(EXECUTIONS, {"tag": "nightly"}).json()["results"] == []


def test_a_tag_filter_of_the_wrong_length_is_a_400(api):
    response = api.get(EXECUTIONS, {"tag": "x" * 65})

    assert response.status_code == 400
    assert "A tag is 1 to 64 characters" in response.json()["tag"][0]


def test_tags_cost_the_create_one_statement_and_none_without_them(user, workflow, no_dispatch):

    def inserts(*tags: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            tagged(user, workflow, *tags)
        return [q["sql"].split()[0].upper() for q in queries.captured_queries].count("INSERT")

    # The execution and its first event; then the tag rows, all in one statement.
    assert inserts() == 2
    assert inserts("a", "b", "c") == 3


def test_a_finished_executions_tags_go_with_it_when_pruned(user, workflow):
    execution = tagged(user, workflow, "old")
    services.execution_start(execution_id=execution.id)
    services.execution_complete(execution_id=execution.id, result=None)
    Execution.objects.filter(id=execution.id).update(
        finished_at=database_now() - timedelta(days=40)
    )

    executions_prune(older_than_days=30)

    assert not Execution.objects.exists()
    assert not ExecutionTag.objects.exists()


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def test_the_admin_lists_filters_and_searches_by_tag(admin_client, workflow, user):
    nightly = tagged(user, workflow, "nightly", "team-a")
    other = tagged(make_user(), workflow, "weekly")

    listing = admin_client.get(CHANGELIST).content.decode()
    filtered = admin_client.get(CHANGELIST, {"tag": "nightly"}).content.decode()
    searched = admin_client.get(CHANGELIST, {"q": "weekly"}).content.decode()
    detail = admin_client.get(f"{CHANGELIST}{nightly.id}/change/").content.decode()

    assert "nightly, team-a" in listing
    assert "By tag" in listing and "?tag=weekly" in listing
    assert str(nightly.id) in filtered and str(other.id) not in filtered
    assert str(other.id) in searched and str(nightly.id) not in searched
    assert "team-a" in detail


def test_run_again_in_the_admin_keeps_the_tags(admin_client, workflow, user, no_dispatch):
    original = tagged(user, workflow, "nightly")

    response = admin_client.post(
        CHANGELIST, {"action": "run_again", "_selected_action": [str(original.id)]}
    )

    assert response.status_code == 302
    again = Execution.objects.exclude(id=original.id).get()
    assert again.tags == ["nightly"]
    assert list(again.tag_rows.values_list("tag", flat=True)) == ["nightly"]


def test_the_schema_describes_tags_in_creates_responses_and_the_list_filter():
    schema = Client().get("/api/v1/schema", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    listing = schema["paths"]["/api/v1/executions"]["get"]

    tags = components["ExecutionCreateRequest"]["properties"]["tags"]
    assert (tags["type"], tags["maxItems"]) == ("array", 10)
    assert tags["items"] == {"type": "string", "minLength": 1, "maxLength": 64}
    assert components["Execution"]["properties"]["tags"]["type"] == "array"
    tag = next(p for p in listing["parameters"] if p["name"] == "tag")
    assert tag["schema"]["maxLength"] == 64
