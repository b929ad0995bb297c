"""LOG_FORMAT=json on the real server: every line parses, and a create's request id
reaches the lines of the run it started."""

import json
import time
import urllib.request

import pytest

from tests.factories import chain, node

pytestmark = pytest.mark.embedded


@pytest.fixture
def server_env():
    return {"LOG_FORMAT": "json", "TRUSTED_PROXY_HOPS": "1"}


def test_the_request_id_of_a_create_is_on_the_lines_of_its_run(server):
    status, workflow = server.request(
        "POST",
        "/api/v1/workflows",
        {"name": "logged", "definition": chain(node("a", "delay", seconds=0))},
    )
    assert status == 201
    request = urllib.request.Request(
        server.url + "/api/v1/executions",
        method="POST",
        data=json.dumps({"workflow_id": workflow["id"]}).encode(),
        headers={
            "Authorization": f"Bearer {server.token}",
            "Content-Type": "application/json",
            "X-Request-ID": "deploy-check-7",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-Request-ID"] == "deploy-check-7"
        execution_id = json.load(response)["id"]

    deadline = time.monotonic() + 15
    while True:
        lines = [json.loads(line) for line in server.log.read_text().splitlines() if line]
        about = [line for line in lines if line.get("execution_id") == execution_id]
        if any("ended its run" in line["message"] for line in about):
            break
        assert time.monotonic() < deadline, about
        time.sleep(0.1)
    assert {line["message"] for line in about} >= {
        f"Execution {execution_id} created",
        f"Execution {execution_id} started",
        f"Execution {execution_id} ended its run here",
    }
    assert all(line["request_id"] == "deploy-check-7" for line in about)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
