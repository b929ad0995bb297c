"""The executions list in real Chromium against the real server: one socket, the
executions feed, no polling."""

import re
import time
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.test_dashboard import log_in
from tests.factories import chain, node

EXECUTIONS = 200
# Long enough for all 200 to be running at once on a busy machine, and for the
# late one to be created while they wait.
WAITS = chain(
    node("wait", "delay", seconds=8),
    node("done", "log", message="done", level="info"),
)
QUICK = chain(node("wait", "delay", seconds=1))


@pytest.fixture
def server_env() -> dict:
    # Every execution of the test on the page from the feed's first read on.
    return {"REALTIME_FEED_BACKLOG": "300"}


def create_workflow(server, name: str, definition: dict) -> dict:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": name, "definition": definition}
    )
    assert status == 201, workflow
    return workflow


def start(server, workflow: dict, tags: list[str] = ()) -> dict:
    body = {"workflow_id": workflow["id"], "tags": list(tags)}
    status, execution = server.request("POST", "/api/v1/executions", body)
    assert status == 201, execution
    return execution


def stored_executions(server) -> dict[str, dict]:
    """Every execution, as the REST API has it now, by id."""
    found, path = {}, "/api/v1/executions"
    while path:
        status, page = server.request("GET", path)
        assert status == 200, page
        found.update((execution["id"], execution) for execution in page["results"])
        path = page["next"] and page["next"].removeprefix(server.url)
    return found


def as_shown(seconds: float) -> str:
    """A duration under a minute as the page writes it (``toFixed(2)`` rounds half up)."""
    return f"{Decimal(seconds).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)} s"


def shown_rows(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#executions tbody tr",
        """rows => rows.map(row => ({
            id: row.dataset.executionId,
            status: row.dataset.status,
            workflow: row.querySelector('.cell-workflow').textContent,
            tags: [...row.querySelectorAll('.tag')].map(tag => tag.textContent),
            progress: row.querySelector('.progress-text').textContent,
            message: row.querySelector('.cell-message').textContent,
            duration: row.querySelector('.cell-duration').textContent,
        }))""",
    )


def watch_traffic(page) -> tuple[list[str], list[str]]:
    """The URLs of the sockets the page opens, and the paths of its API requests."""
    sockets: list[str] = []
    api_paths: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))

    def requested(request) -> None:
        path = urlsplit(request.url).path
        if path.startswith("/api/"):
            api_paths.append(path)

    page.on("request", requested)
    return sockets, api_paths


def test_two_hundred_running_executions_on_one_socket_without_polling(server, page):
    waits = create_workflow(server, "waits", WAITS)
    sockets, api_paths = watch_traffic(page)
    log_in(page, server)  # the executions list is the home page
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#executions-empty")).to_be_visible()

    items = [{"workflow_id": waits["id"], "tags": ["load"]} for _ in range(EXECUTIONS)]
    status, batch = server.request("POST", "/api/v1/executions/batch", {"items": items})
    assert status == 201, batch
    running = page.locator('#executions tbody tr[data-status="running"]')
    expect(running).to_have_count(EXECUTIONS, timeout=30_000)

    # One more while the 200 run: at the top within a second of its creation.
    late = start(server, waits, tags=["late"])
    created = time.monotonic()
    page.wait_for_selector(f'tr[data-execution-id="{late["id"]}"]', timeout=1_000)
    assert time.monotonic() - created < 1.0
    assert (
        page.locator("#executions tbody tr").first.get_attribute("data-execution-id")
        == (late["id"])
    )

    unfinished = page.locator('#executions tbody tr:not([data-status="completed"])')
    expect(unfinished).to_have_count(0, timeout=45_000)
    stored = stored_executions(server)
    rows = shown_rows(page)
    assert [row["id"] for row in rows] == sorted(
        stored, key=lambda id: (stored[id]["created_at"], id), reverse=True
    )
    assert len(rows) == EXECUTIONS + 1
    for row in rows:
        execution = stored[row["id"]]
        assert row == {
            "id": execution["id"],
            "status": "completed",
            "workflow": "waits",
            "tags": execution["tags"],
            "progress": "100%",
            "message": execution["message"],
            "duration": as_shown(execution["execution_time"]),
        }
    assert rows[0]["tags"] == ["late"] and rows[1]["tags"] == ["load"]

    assert sockets == [f"{server.ws_url}/api/v1/ws"]
    assert "/api/v1/executions" not in api_paths
    assert api_paths == ["/api/v1/workflows"]  # the workflow filter's choices, once


def test_the_filters_apply_to_the_feed(server, page):
    quick = create_workflow(server, "quick", QUICK)
    other = create_workflow(server, "other", QUICK)
    tagged = start(server, quick, tags=["nightly"])
    plain = start(server, other)
    log_in(page, server)
    rows = page.locator("#executions tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator(f'tr[data-execution-id="{tagged["id"]}"] .tag')).to_have_text("nightly")
    expect(page.locator('#executions tbody tr[data-status="completed"]')).to_have_count(2)

    # Running: a new execution appears, and goes once it has completed.
    page.click('#status-filter button[data-status="running"]')
    expect(page).to_have_url(re.compile(r"/\?status=running$"))
    expect(rows).to_have_count(0)
    running = start(server, quick)
    row = page.locator(f'tr[data-execution-id="{running["id"]}"]')
    expect(row).to_have_attribute("data-status", "running")
    expect(rows).to_have_count(0, timeout=10_000)

    # A tag (typed, or clicked in a row), and a workflow.
    page.click('#status-filter button[data-status=""]')
    expect(rows).to_have_count(3)
    page.fill("#tag-filter", "nightly")
    page.press("#tag-filter", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-execution-id", tagged["id"])
    page.fill("#tag-filter", "")
    page.press("#tag-filter", "Enter")
    expect(rows).to_have_count(3)
    page.select_option("#workflow-filter", other["id"])
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-execution-id", plain["id"])
    page.select_option("#workflow-filter", "")
    page.locator(f'tr[data-execution-id="{tagged["id"]}"] .tag').click()
    expect(page).to_have_url(re.compile(r"/\?tag=nightly$"))
    expect(rows).to_have_count(1)
    expect(page.locator("#tag-filter")).to_have_value("nightly")

    # A filtered list can be linked to.
    page.goto(f"{server.url}/?workflow={other['id']}")
    expect(rows).to_have_count(1)
    expect(page.locator("#workflow-filter")).to_have_value(other["id"])
