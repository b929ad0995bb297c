"""REST limits: throttled token, ticket and execution requests; the request body size."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from executions.api.limits import FailedLoginThrottle
from executions.models import Execution, ExecutionEvent, Workflow
from realtime.models import SocketTicket
from tests.conftest import bearer_client
from tests.factories import make_user, make_workflow

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # what tests.factories.make_user sets


def test_the_documented_defaults():
    assert settings.API_TOKEN_RATE == "10/minute"
    assert settings.API_WS_TICKET_RATE == "60/minute"
    assert settings.API_EXECUTION_CREATE_RATE == "1000/minute"
    assert settings.API_EXECUTION_BATCH_MAX_ITEMS == 1000
    assert settings.EXECUTIONS_MAX_ACTIVE_PER_USER == 1000
    assert settings.API_MAX_BODY_BYTES == 1024 * 1024


def assert_throttled(response, *, says: str) -> None:
    assert response.status_code == 429
    detail = response.json()["detail"]
    assert says in detail and "Try again in" in detail, detail
    assert int(response["Retry-After"]) > 0


def test_token_requests_are_throttled_per_client_address(user):
    credentials = {"username": "alice", "password": PASSWORD}
    client = APIClient(REMOTE_ADDR="10.0.0.1")
    for _ in range(10):
        assert client.post("/api/v1/auth/token", credentials, format="json").status_code == 200

    response = client.post("/api/v1/auth/token", credentials, format="json")

    assert_throttled(response, says="at most 10 per minute (API_TOKEN_RATE)")
    # Another address is not affected.
    other = APIClient(REMOTE_ADDR="10.0.0.2")
    assert other.post("/api/v1/auth/token", credentials, format="json").status_code == 200


def test_a_forged_forwarded_for_header_does_not_escape_the_token_rate(user, settings):
    settings.API_TOKEN_RATE = "2/minute"
    client = APIClient(REMOTE_ADDR="10.0.0.1")
    credentials = {"username": "alice", "password": PASSWORD}
    codes = [
        client.post(
            "/api/v1/auth/token", credentials, HTTP_X_FORWARDED_FOR=f"1.2.3.{i}"
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]


def test_wrong_passwords_count_against_the_token_rate(user, settings):
    settings.API_TOKEN_RATE = "3/hour"
    client = APIClient()
    for _ in range(3):
        response = client.post("/api/v1/auth/token", {"username": "alice", "password": "x"})
        assert response.status_code == 400

    response = client.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD})

    assert_throttled(response, says="at most 3 per hour")
    assert not Token.objects.exists()


def test_ticket_requests_are_throttled_per_user(user, other_user, settings):
    settings.API_WS_TICKET_RATE = "2/minute"
    client = bearer_client(user)
    assert [client.post("/api/v1/ws-tickets").status_code for _ in range(2)] == [201, 201]

    assert_throttled(client.post("/api/v1/ws-tickets"), says="at most 2 per minute")
    assert SocketTicket.objects.count() == 2
    assert bearer_client(other_user).post("/api/v1/ws-tickets").status_code == 201


def test_execution_creation_is_throttled_per_user(user, other_user, settings):
    settings.API_EXECUTION_CREATE_RATE = "3/second"
    workflow = make_workflow(user)
    body = {"workflow_id": str(workflow.id)}
    client = bearer_client(user)
    for _ in range(3):
        assert client.post("/api/v1/executions", body, format="json").status_code == 201

    response = client.post("/api/v1/executions", body, format="json")

    assert_throttled(response, says="executions started: at most 3 per second")
    assert Execution.objects.count() == 3
    # Reads are not throttled, nor are other users.
    assert client.get("/api/v1/executions").status_code == 200
    theirs = make_workflow(other_user)
    other = bearer_client(other_user)
    response = other.post("/api/v1/executions", {"workflow_id": str(theirs.id)}, format="json")
    assert response.status_code == 201


def test_a_thousand_executions_a_minute_are_allowed_by_default(user):
    workflow = make_workflow(user)
    client = bearer_client(user)
    start = {"workflow_id": str(workflow.id)}
    codes = [
        client.post("/api/v1/executions", start, format="json").status_code for _ in range(200)
    ]
    batch = client.post("/api/v1/executions/batch", {"items": [start] * 800}, format="json")
    assert codes == [201] * 200 and batch.status_code == 201
    assert_throttled(
        client.post("/api/v1/executions", start, format="json"),
        says="at most 1000 per minute (API_EXECUTION_CREATE_RATE)",
    )
    assert Execution.objects.count() == 1000


def test_an_empty_rate_means_no_throttle(user, settings):
    settings.API_TOKEN_RATE = ""
    credentials = {"username": "alice", "password": PASSWORD}
    client = APIClient()
    codes = {client.post("/api/v1/auth/token", credentials).status_code for _ in range(15)}
    assert codes == {200}


def execution_body(workflow, size: int) -> bytes:
    body = {"workflow_id": str(workflow.id), "input_data": {"pad": ""}}
    padding = size - len(json.dumps(body).encode())
    body["input_data"]["pad"] = "x" * padding
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


def test_a_body_over_one_mib_gets_a_json_413_and_nothing_is_stored(user):
    workflow = make_workflow(user)
    events_before = ExecutionEvent.objects.count()

    response = bearer_client(user).generic(
        "POST",
        "/api/v1/executions",
        execution_body(workflow, 1024 * 1024 + 1),
        content_type="application/json",
    )

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert "1048577 bytes" in detail and "1048576" in detail and "API_MAX_BODY_BYTES" in detail
    assert not Execution.objects.exists()
    assert ExecutionEvent.objects.count() == events_before


def test_a_body_of_exactly_one_mib_is_accepted(user):
    workflow = make_workflow(user)

    response = bearer_client(user).generic(
        "POST",
        "/api/v1/executions",
        execution_body(workflow, 1024 * 1024),
        content_type="application/json",
    )

    assert response.status_code == 201
    assert len(Execution.objects.get().input_data["pad"]) > 1000000


def test_the_body_limit_covers_every_endpoint_and_is_a_setting(user, settings):
    settings.API_MAX_BODY_BYTES = 100
    definition = {"nodes": [{"id": "n" * 200, "type": "delay", "params": {"seconds": 0}}]}

    response = bearer_client(user).post(
        "/api/v1/workflows", {"name": "w", "definition": definition}, format="json"
    )

    assert response.status_code == 413
    assert "the limit is 100 bytes" in response.json()["detail"]
    assert not Workflow.objects.exists()
    anonymous = APIClient().post("/api/v1/auth/token", {"username": "a" * 200, "password": "p"})
    assert anonymous.status_code == 413


def test_the_schema_is_served(db):
    make_user()
    response = APIClient().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert "/api/v1/ws-tickets" in paths
    assert "/api/v1/executions" in paths


def test_failed_token_requests_are_limited_per_username_and_successes_do_not_count(user, settings):
    settings.API_TOKEN_RATE = ""
    good = {"username": "alice", "password": PASSWORD}
    assert {APIClient().post("/api/v1/auth/token", good).status_code for _ in range(8)} == {200}
    Token.objects.all().delete()

    codes = [
        APIClient(REMOTE_ADDR=f"10.0.4.{n}")
        .post("/api/v1/auth/token", {"username": "alice", "password": "wrong"})
        .status_code
        for n in range(5)
    ]
    response = APIClient(REMOTE_ADDR="10.0.5.1").post("/api/v1/auth/token", good)

    assert codes == [400] * 5
    assert_throttled(response, says="at most 5 per minute (API_LOGIN_USERNAME_RATE)")
    assert not Token.objects.exists()
    assert (
        APIClient().post("/api/v1/auth/token", {"username": "bob", "password": "x"}).status_code
        == 400
    )


def test_parallel_attempts_on_one_username_cannot_overshoot_its_limit():
    attempts = [FailedLoginThrottle("alice") for _ in range(40)]
    start = threading.Barrier(len(attempts))

    def attempt(throttle):
        start.wait()
        return throttle.allow_request(None, None)

    with ThreadPoolExecutor(len(attempts)) as pool:
        allowed = list(pool.map(attempt, attempts))

    assert allowed.count(True) == 5
    # A success gives its place back; a refused attempt never took one.
    next(t for t, ok in zip(attempts, allowed, strict=True) if ok).succeeded()
    assert FailedLoginThrottle("alice").allow_request(None, None)
    assert not FailedLoginThrottle("alice").allow_request(None, None)
