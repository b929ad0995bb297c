"""The execution page's output panels end to end, against the real server: a node
streams its output (``ctx.stream``, through tests/browser/streaming's
``test_stream``), and the page shows it as it comes, then once again after a
reload."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_dashboard import log_in
from tests.browser.test_execution_page_output import output, wait_for_output
from tests.e2e.test_server import stored_events
from tests.factories import chain, node

PIECES = ["Hello, ", "streamed ", "world\n"]
STREAMING = chain(
    node("wait", "delay", seconds=1.0),  # the page is open before the first piece
    node("write", "test_stream", pieces=PIECES, pause=0.4),
)


@pytest.fixture
def server_env() -> dict:
    return {"EXTRA_INSTALLED_APPS": "tests.browser.streaming"}


def test_a_streaming_node_is_shown_as_it_comes_and_once_after_a_reload(server, page):
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "streaming", "definition": STREAMING}
    )
    assert status == 201, workflow
    log_in(page, server)
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
    )
    assert status == 201, execution
    page.goto(f"{server.url}/executions/{execution['id']}/")

    wait_for_output(page, "write", "output", "Hello, ")  # before the node has finished
    wait_for_output(page, "write", "output", "".join(PIECES))
    expect(page.locator("#execution-page")).to_have_attribute("data-settled", "true")
    chunks = [e for e in stored_events(server, execution["id"]) if e["type"] == "chunk"]
    assert "".join(chunk["data"] for chunk in chunks) == "".join(PIECES)
    assert len(chunks) == len(PIECES)  # 0.4 s apart: not coalesced
    _, detail = server.request("GET", f"/api/v1/executions/{execution['id']}")
    (run,) = [run for run in detail["nodes"] if run["node_id"] == "write"]
    assert run["streams"] == {"output": "".join(PIECES)}

    page.reload()
    expect(page.locator("#execution-page")).to_have_attribute("data-settled", "true")
    assert output(page, "write", "output") == "".join(PIECES)
    assert page.locator(".stream-title").all_text_contents() == ["write · output"]
