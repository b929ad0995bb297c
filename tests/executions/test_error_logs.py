"""Every error the service reports to a client is logged once, with its traceback
and the ids of what it was about: a 500 and a node's crash here, a socket's 1011
close in tests/realtime/test_consumer_errors.py."""

import pytest
from rest_framework.test import APIClient

import tests.executions.nodes  # noqa: F401  registers test_crash
from executions.api.views import ExecutionViewSet
from tests.conftest import make_token
from tests.executions.engine_helpers import run
from tests.factories import chain, make_user, node


@pytest.mark.django_db
def test_a_500_is_logged_once_with_its_request_id(monkeypatch, error_lines):
    def broken(self, request, *args, **kwargs):
        raise RuntimeError("a bug in a view")

    monkeypatch.setattr(ExecutionViewSet, "list", broken)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(make_user())}")
    response = client.get("/api/v1/executions")
    assert response.status_code == 500
    [line] = error_lines
    assert line["request_id"] == response["X-Request-ID"]
    assert "RuntimeError: a bug in a view" in line["traceback"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
async def test_a_node_crash_is_logged_once_with_the_execution_and_the_node(error_lines):
    execution, _ = await run(chain(node("boom", "test_crash")))
    assert execution.status == "failed" and "a bug in the node" in execution.error
    [line] = error_lines
    assert (line["execution_id"], line["node_id"]) == (str(execution.id), "boom")
    assert "RuntimeError: a bug in the node" in line["traceback"]
