"""Every endpoint, authenticated or not, answers nested, huge and malformed bodies without a 500."""

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executions.api.parsers import json_depth
from tests.factories import make_execution, make_token, make_user, make_workflow

pytestmark = pytest.mark.django_db

EXAMPLES_PER_ROUTE = 25
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Every route of the service; {workflow} and {execution} become ids of real rows.
PATHS = [
    "/api/v1/auth/token",
    "/api/v1/ws-tickets",
    "/api/v1/workflows",
    "/api/v1/workflows/{workflow}",
    "/api/v1/executions",
    "/api/v1/executions/batch",
    "/api/v1/executions/{execution}",
    "/api/v1/executions/{execution}/cancel",
    "/api/v1/executions/{execution}/events",
    "/api/v1/schema",
    "/login/",
    "/logout/",
    "/admin/login/",
    "/",
    "/workflows/",
    "/workflows/new/",
    "/workflows/{workflow}/",
    "/executions/{execution}/",
]
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "application/json; charset=latin-1",
]


def nested(depth: int, opener: str, closer: str, inner: str = "1") -> str:
    return opener * depth + inner + closer * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
deep_bodies = st.builds(
    nested,
    st.integers(min_value=50, max_value=200_000),
    st.sampled_from(["[", '{"a":', '{"input_data":', '{"definition":{"nodes":']),
    st.sampled_from(["]", "}"]),
    st.sampled_from(["1", "", '"x"', "[]"]),
)
malformed = st.sampled_from(
    [
        "",
        "{",
        "[1,",
        '{"a": }',
        "NaN",
        "[Infinity]",
        '{"input_data": 1e999999}',
        "1" * 5000,
        '"\\ud800"',
        '{"a": "\x00"}',
        "\ufeff{}",
        "null",
        '{"workflow_id": null}',
        '{"workflow_id": {"$gt": ""}}',
        '{"username": ["a"], "password": {"b": 1}}',
    ]
)
huge = st.builds(
    lambda size, shape: shape.replace("X", "x" * size),
    st.sampled_from([1000, 200_000, 1_100_000]),
    st.sampled_from(['{"name": "X", "definition": {}}', '["X"]', "X", '{"input_data": {"X": 1}}']),
)
bodies = (
    deep_bodies
    | deep_bodies
    | malformed
    | huge
    | json_values.map(json.dumps)
    | st.binary(max_size=200).map(lambda raw: raw.decode("latin-1"))
)


@pytest.fixture
def clients():
    owner = make_user("owner")
    workflow = make_workflow(owner)
    execution = make_execution(owner, workflow)
    anonymous = Client()
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")
    session = Client()
    session.force_login(owner)
    ids = {"workflow": workflow.id, "execution": execution.id}
    return [anonymous, bearer, session], ids


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", PATHS)
def test_no_body_on_any_route_gets_a_server_error(clients, path, method):
    every_client, ids = clients
    url = path.format(**ids)

    @given(
        # JSON most often: it is what the API parses.
        content_type=st.sampled_from(CONTENT_TYPES) | st.just("application/json"),
        body=bodies,
        client=st.sampled_from(every_client),
    )
    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_without_a_server_error(content_type, body, client):
        response = client.generic(method, url, body.encode("utf-8", "surrogatepass"), content_type)
        assert response.status_code < 500, (method, url, content_type, body[:200])

    answers_without_a_server_error()


@pytest.mark.parametrize("opener", ["[", '{"a":'])
@pytest.mark.parametrize("client_kind", ["anonymous", "bearer"])
def test_deep_json_is_a_400_that_says_so(clients, opener, client_kind):
    (anonymous, bearer, _), _ = clients
    client = anonymous if client_kind == "anonymous" else bearer
    path = "/api/v1/auth/token" if client_kind == "anonymous" else "/api/v1/workflows"

    for depth in (65, 5_000, 100_000):
        closer = "]" if opener == "[" else "}"
        response = client.post(path, nested(depth, opener, closer), "application/json")

        assert response.status_code == 400
        assert "API_MAX_JSON_DEPTH" in response.json()["detail"]


def test_json_at_the_depth_limit_is_accepted(api, settings):
    settings.API_MAX_JSON_DEPTH = 10
    input_data = json.loads(nested(9, '{"a":', "}"))  # the body's own object is the tenth
    workflow = make_workflow(make_user("someone"))

    response = api.post(
        "/api/v1/executions", {"workflow_id": str(workflow.id), "input_data": input_data}, "json"
    )

    assert response.status_code != 400 or "API_MAX_JSON_DEPTH" not in str(response.json())
    assert json_depth({"input_data": input_data}, 10) == 10


def test_depth_counts_arrays_and_objects_only():
    assert json_depth(1, 5) == 0
    assert json_depth([], 5) == 1
    assert json_depth({"a": [1, {"b": "c"}]}, 5) == 3
    assert json_depth(json.loads(nested(50, "[", "]")), 5) == 6  # stops counting past the limit
