"""JSON log lines with the ids of what they are about, and the request id."""

import json
import logging
import sys

import pytest

from executions import log_context
from executions.models import Execution
from tests.conftest import bearer_client
from tests.factories import chain, make_user, make_workflow, node


def formatted(record_name="x", message="hello %s", args=("you",), exc_info=None) -> dict:
    record = logging.LogRecord(record_name, logging.ERROR, __file__, 1, message, args, exc_info)
    return json.loads(log_context.JsonFormatter().format(record))


def test_a_line_is_one_json_object_with_the_ids_bound_where_it_was_logged():
    plain = formatted()
    assert plain == {
        "time": plain["time"],
        "level": "ERROR",
        "logger": "x",
        "message": "hello you",
    }
    with log_context.bound(request_id="r1", execution_id="e1"):
        with log_context.bound(node_id="n1"):
            line = formatted()
        after_node = formatted()
    assert (line["request_id"], line["execution_id"], line["node_id"]) == ("r1", "e1", "n1")
    assert "node_id" not in after_node and after_node["execution_id"] == "e1"
    assert "execution_id" not in formatted()  # unbound again
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_a_traceback_goes_in_the_line():
    try:
        raise ValueError("boom")
    except ValueError:
        line = formatted(exc_info=sys.exc_info())
    assert "ValueError: boom" in line["traceback"] and "\n" not in json.dumps(line)[1:-1]


@pytest.mark.django_db
def test_every_response_has_a_request_id_and_a_proxys_is_taken_only_when_trusted(
    settings, no_dispatch
):
    user = make_user()
    workflow = make_workflow(user, chain(node("a", "log", message="x")))
    client = bearer_client(user)
    body = {"workflow_id": str(workflow.id), "input_data": {}}

    created = client.post("/api/v1/executions", body, format="json", HTTP_X_REQUEST_ID="abc-1")
    own = created["X-Request-ID"]
    assert len(own) == 32 and own != "abc-1"  # no trusted proxy: a new id
    assert Execution.objects.get(id=created.json()["id"]).request_id == own

    settings.TRUSTED_PROXY_HOPS = 1
    given = client.post("/api/v1/executions", body, format="json", HTTP_X_REQUEST_ID="abc-1")
    assert given["X-Request-ID"] == "abc-1"
    assert Execution.objects.get(id=given.json()["id"]).request_id == "abc-1"
    forged = client.get("/api/v1/executions", HTTP_X_REQUEST_ID="x" * 65 + "\n")
    assert forged["X-Request-ID"] != "x" * 65 and len(forged["X-Request-ID"]) == 32
