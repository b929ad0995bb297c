"""The OpenAPI schema at /api/v1/schema describes every endpoint, validly and exactly."""

import pytest
from django.core.management import call_command
from django.test import Client
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    ("/api/v1/auth/token", "post"),
    ("/api/v1/ws-tickets", "post"),
    ("/api/v1/workflows", "get"),
    ("/api/v1/workflows", "post"),
    ("/api/v1/workflows/{id}", "get"),
    ("/api/v1/workflows/{id}", "put"),
    ("/api/v1/workflows/{id}", "patch"),
    ("/api/v1/workflows/{id}", "delete"),
    ("/api/v1/executions", "get"),
    ("/api/v1/executions", "post"),
    ("/api/v1/executions/batch", "post"),
    ("/api/v1/executions/{id}", "get"),
    ("/api/v1/executions/{id}/cancel", "post"),
    ("/api/v1/executions/{id}/events", "get"),
    ("/api/v1/executions/{id}/stream", "get"),
    ("/api/v1/stream", "get"),
    ("/api/v1/workers", "get"),
}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = Client().get("/api/v1/schema", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operation(schema: dict, path: str, method: str) -> dict:
    return schema["paths"][path][method]


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)


def test_schema_generation_has_no_warnings(tmp_path):
    # A warning means an endpoint whose shape drf-spectacular had to guess.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_schema_lists_every_endpoint_once(schema):
    listed = {(path, method) for path, methods in schema["paths"].items() for method in methods}

    assert listed == ENDPOINTS


def test_every_operation_has_a_summary_and_a_success_response(schema):
    for path, method in ENDPOINTS:
        op = operation(schema, path, method)
        assert op.get("summary"), (path, method)
        assert any(code.startswith("2") for code in op["responses"]), (path, method)


def test_token_endpoint_needs_no_auth_and_returns_the_token(schema):
    op = operation(schema, "/api/v1/auth/token", "post")
    components = schema["components"]["schemas"]

    assert "security" not in op and "security" not in schema  # no auth required
    body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(components[body]["properties"]) == {"username", "password"}
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert components[ok.rsplit("/", 1)[1]]["properties"].keys() == {"token"}
    assert "400" in op["responses"]


def test_other_endpoints_take_a_bearer_token_or_a_session(schema):
    schemes = schema["components"]["securitySchemes"]

    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["tokenAuth"].items()
    assert schemes["cookieAuth"]["in"] == "cookie"
    for path, method in ENDPOINTS - {("/api/v1/auth/token", "post")}:
        assert operation(schema, path, method)["security"] == [
            {"tokenAuth": []},
            {"cookieAuth": []},
        ]


def test_cancel_takes_no_body_and_answers_202_or_409(schema):
    op = operation(schema, "/api/v1/executions/{id}/cancel", "post")

    assert "requestBody" not in op
    assert set(op["responses"]) == {"202", "404", "409"}
    assert op["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Execution"
    }


def test_events_takes_after_and_limit_and_returns_typed_events(schema):
    op = operation(schema, "/api/v1/executions/{id}/events", "get")
    components = schema["components"]["schemas"]

    query = {p["name"]: p["schema"] for p in op["parameters"] if p["in"] == "query"}
    assert query["after"] == {"type": "integer", "minimum": 0, "default": 0}
    assert query["limit"]["maximum"] == 1000
    page = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert page == "#/components/schemas/EventPage"
    assert components["EventPage"]["properties"]["results"]["items"] == {
        "$ref": "#/components/schemas/Event"
    }
    assert components["Event"]["discriminator"] == {
        "propertyName": "type",
        "mapping": {
            "status": "#/components/schemas/StatusEvent",
            "node": "#/components/schemas/NodeEvent",
            "log": "#/components/schemas/LogEvent",
        },
    }
    assert set(components["StatusEvent"]["required"]) == {
        "type",
        "execution_id",
        "status",
        "progress",
        "message",
        "result",
        "error",
        "execution_time",
        "seq",
        "timestamp",
    }


def test_execution_create_takes_the_create_body_and_list_takes_filters(schema):
    create = operation(schema, "/api/v1/executions", "post")
    listing = operation(schema, "/api/v1/executions", "get")

    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body == "#/components/schemas/ExecutionCreateRequest"
    assert {p["name"] for p in listing["parameters"]} == {"page", "status", "workflow", "tag"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Execution"
    }


def test_swagger_ui_is_served_from_local_static_files():
    html = Client().get("/api/v1/docs").content.decode()
    asset = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"

    assert asset in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert Client().get(asset).status_code == 200


def test_execution_detail_carries_the_definition_it_runs_and_the_list_does_not(schema):
    components = schema["components"]["schemas"]
    detail = operation(schema, "/api/v1/executions/{id}", "get")["responses"]["200"]
    listing = operation(schema, "/api/v1/executions", "get")["responses"]["200"]

    assert detail["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExecutionDetail"
    }
    definition = components["ExecutionDetail"]["properties"]["definition"]
    assert definition["readOnly"] is True
    assert definition["required"] == ["nodes"]
    assert "definition" in components["ExecutionDetail"]["required"]
    page = listing["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert components[page]["properties"]["results"]["items"] == {
        "$ref": "#/components/schemas/Execution"
    }
    assert "definition" not in components["Execution"]["properties"]


def test_workflow_changes_document_403_and_execution_create_429(schema):
    for method in ["put", "patch", "delete"]:
        assert "403" in operation(schema, "/api/v1/workflows/{id}", method)["responses"], method
    assert "429" in operation(schema, "/api/v1/executions", "post")["responses"]


def test_the_batch_takes_create_bodies_and_answers_executions(schema):
    batch = operation(schema, "/api/v1/executions/batch", "post")
    components = schema["components"]["schemas"]

    body = batch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    items = components[body.rsplit("/", 1)[1]]["properties"]["items"]
    assert items["items"] == {"$ref": "#/components/schemas/ExecutionCreateRequest"}
    created = batch["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    results = components[created.rsplit("/", 1)[1]]["properties"]["results"]
    assert results["items"] == {"$ref": "#/components/schemas/Execution"}
    assert {"400", "429"} <= set(batch["responses"])


def test_the_event_streams_and_the_long_poll_are_described(schema):
    for path in ("/api/v1/executions/{id}/stream", "/api/v1/stream"):
        op = operation(schema, path, "get")
        assert list(op["responses"]["200"]["content"]) == ["text/event-stream"]
        names = {p["name"] for p in op["parameters"]}
        assert {"Last-Event-ID", "ticket"} <= names, path
        assert op["responses"]["404" if "{id}" in path else "400"]["content"]["application/json"]
    events = operation(schema, "/api/v1/executions/{id}/events", "get")
    assert "wait" in {p["name"] for p in events["parameters"]}
    assert "429" in events["responses"]


def test_the_execution_detail_lists_its_runs_and_workers_are_for_staff(schema):
    components = schema["components"]["schemas"]
    runs = components["ExecutionDetail"]["properties"]["runs"]
    workers = operation(schema, "/api/v1/workers", "get")

    assert runs["items"] == {"$ref": "#/components/schemas/ExecutionRun"}
    assert {"number", "worker", "started_at", "ended_at", "outcome"} <= set(
        components["ExecutionRun"]["properties"]
    )
    assert "runs" in components["ExecutionDetail"]["required"]
    assert "runs" not in components["Execution"]["properties"]
    assert set(workers["responses"]) == {"200", "403"}
    page = workers["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert page == "#/components/schemas/Workers"
