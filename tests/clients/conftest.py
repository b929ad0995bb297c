"""One real server per test module, and the workflows the client tests run on it."""

import pytest

from tests.e2e.conftest import serve
from tests.factories import chain, node

# About twenty events over half a second: enough to cut, drop and resume live.
STEPS = chain(
    node("greet", "log", message="hello from the client", level="info"),
    node("wait", "delay", seconds=0.3),
    node("again", "log", message="still here", level="warning"),
    node("pause", "delay", seconds=0.2),
    node("shout", "transform", expression="{echo: input}"),
)


@pytest.fixture(scope="package")
def live(tmp_path_factory):
    """A fresh SQLite database served by one daphne, shared by the client tests."""
    with serve(tmp_path_factory.mktemp("server"), {}) as running:
        yield running


@pytest.fixture(scope="package")
def steps(live) -> dict:
    status, workflow = live.request(
        "POST", "/api/v1/workflows", {"name": "client steps", "definition": STEPS}
    )
    assert status == 201, workflow
    return workflow


def start(live, workflow: dict, input_data: dict | None = None) -> str:
    status, execution = live.request(
        "POST",
        "/api/v1/executions",
        {"workflow_id": workflow["id"], "input_data": input_data or {"input": "hi"}},
    )
    assert status == 201, execution
    return execution["id"]
