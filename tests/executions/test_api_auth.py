"""Authentication of the REST API: token endpoint, Bearer tokens, sessions."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from executions.models import Execution, ExecutionEvent, Workflow
from tests.conftest import bearer_client
from tests.factories import make_execution, make_token, make_workflow

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # what tests.factories.make_user sets


@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/auth/token/"])
def test_token_for_good_credentials(user, path):
    response = APIClient().post(path, {"username": "alice", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"token"}
    assert response.json()["token"] == Token.objects.get(user=user).key


def test_token_from_endpoint_authenticates_requests(user):
    token = (
        APIClient()
        .post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json")
        .json()["token"]
    )
    make_workflow(user, name="mine")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.get("/api/v1/workflows")

    assert response.status_code == 200
    assert [w["name"] for w in response.json()["results"]] == ["mine"]


def test_token_is_stable_across_logins(user):
    credentials = {"username": "alice", "password": PASSWORD}
    first = APIClient().post("/api/v1/auth/token", credentials, format="json").json()["token"]
    second = APIClient().post("/api/v1/auth/token", credentials, format="json").json()["token"]

    assert first == second
    assert Token.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": PASSWORD},
        {"username": "ALICE", "password": PASSWORD},
    ],
)
def test_token_for_wrong_credentials_is_400(user, credentials):
    response = APIClient().post("/api/v1/auth/token", credentials, format="json")

    assert response.status_code == 400
    assert "token" not in response.json()
    assert response.json()["non_field_errors"] == ["Unable to log in with provided credentials."]
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    ("credentials", "missing"),
    [({"username": "alice"}, "password"), ({"password": PASSWORD}, "username"), ({}, "username")],
)
def test_token_with_missing_field_is_400_naming_it(user, credentials, missing):
    response = APIClient().post("/api/v1/auth/token", credentials, format="json")

    assert response.status_code == 400
    assert response.json()[missing] == ["This field is required."]
    assert not Token.objects.exists()


def test_token_for_inactive_user_is_400(user):
    user.is_active = False
    user.save()

    response = APIClient().post(
        "/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 400
    assert not Token.objects.exists()


def _endpoints(workflow_id, execution_id):
    """Every (method, path) of the API, each with and without its trailing slash."""
    paths = [
        ("get", "/api/v1/workflows"),
        ("post", "/api/v1/workflows"),
        ("get", f"/api/v1/workflows/{workflow_id}"),
        ("put", f"/api/v1/workflows/{workflow_id}"),
        ("patch", f"/api/v1/workflows/{workflow_id}"),
        ("delete", f"/api/v1/workflows/{workflow_id}"),
        ("get", "/api/v1/executions"),
        ("post", "/api/v1/executions"),
        ("get", f"/api/v1/executions/{execution_id}"),
    ]
    return [(method, path + slash) for method, path in paths for slash in ("", "/")]


def test_every_endpoint_is_401_without_credentials(user):
    execution = make_execution(user)
    workflow = execution.workflow
    client = APIClient()

    for method, path in [*_endpoints(workflow.id, execution.id), ("get", "/api/v1/")]:
        body = {"workflow_id": str(workflow.id), "name": "hijacked", "definition": {}}
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json() == {"detail": "Authentication credentials were not provided."}
        assert response.headers["WWW-Authenticate"] == "Bearer"

    workflow.refresh_from_db()
    assert workflow.name == "flow"
    assert Workflow.objects.count() == 1
    assert Execution.objects.count() == 1
    assert ExecutionEvent.objects.count() == 1


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-real-token",
        "Bearer",
        "Bearer two words",
        "Basic YWxpY2U6cGFzcy13b3JkLTEyMw==",  # alice's real password, wrong scheme
    ],
)
def test_bad_authorization_header_is_401(user, header):
    make_token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    assert client.get("/api/v1/workflows").status_code == 401
    assert client.get("/api/v1/executions/").status_code == 401


def test_token_keyword_other_than_bearer_is_401(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {make_token(user)}")

    assert client.get("/api/v1/workflows").status_code == 401


def test_token_of_inactive_user_is_401(user):
    client = bearer_client(user)
    user.is_active = False
    user.save()

    response = client.get("/api/v1/workflows")

    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


def test_session_login_reads_the_api(user, other_user):
    make_workflow(user, name="mine")
    make_workflow(other_user, name="theirs")
    client = APIClient()
    client.force_login(user)

    response = client.get("/api/v1/workflows/")

    assert response.status_code == 200
    assert [w["name"] for w in response.json()["results"]] == ["mine"]


def test_session_login_starts_an_execution(user):
    workflow = make_workflow(user)
    client = APIClient()
    client.force_login(user)

    response = client.post("/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json")

    assert response.status_code == 201
    assert Execution.objects.get().owner == user


def test_session_login_requires_csrf_token_for_writes(user):
    workflow = make_workflow(user)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post("/api/v1/executions", {"workflow_id": str(workflow.id)}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Execution.objects.exists()


def test_browsable_api_renders_for_session_user(user):
    client = APIClient()
    client.force_login(user)

    response = client.get("/api/v1/workflows", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
