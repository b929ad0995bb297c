"""The workers page and an execution's runs in real Chromium, on the embedded server
(a server that runs executions itself)."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.test_dashboard import log_in
from tests.factories import chain, node


@pytest.fixture
def server_env() -> dict:
    return {"WORKERS_HEARTBEAT_SECONDS": "0.5", "WORKERS_TIMEOUT_SECONDS": "3"}


def start(server, definition: dict) -> str:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "w", "definition": definition}
    )
    assert status == 201, workflow
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"]}
    )
    assert status == 201, execution
    return execution["id"]


def test_the_workers_page_shows_the_server_and_what_it_runs(server, page):
    log_in(page, server)
    execution_id = start(server, chain(node("wait", "delay", seconds=30)))

    page.click("nav a[href='/workers/']")
    row = page.locator(f"#workers tbody tr:has(td.mono:text-is('{server_name(server)}'))")

    expect(row).to_have_attribute("data-state", "alive")
    expect(row.locator("td").nth(2)).to_have_text("Server, runs executions")
    expect(row.locator(f"a[href='/executions/{execution_id}/']")).to_have_text(execution_id[:8])
    expect(row.locator(".lease")).to_have_attribute("data-health", "ok")
    expect(row.locator("td").nth(3)).to_contain_text("1 execution")


def test_an_executions_page_says_which_worker_runs_it(server, page):
    log_in(page, server)
    execution_id = start(server, chain(node("wait", "delay", seconds=0.5)))

    page.goto(f"{server.url}/executions/{execution_id}/")

    run = page.locator("#runs tbody tr[data-run='1']")
    expect(page.locator("#runs-card")).to_be_visible()
    expect(run.locator("td").nth(1)).to_contain_text(server_name(server))
    expect(run.locator("td").nth(4)).to_have_text("Completed")
    expect(run.locator("td").nth(3)).to_have_text(re.compile(r"\d"))


def server_name(server) -> str:
    """The server's name as its heartbeats give it, host:pid (once it has sent one)."""
    deadline = time.monotonic() + 5
    while True:
        status, body = server.request("GET", "/api/v1/workers")
        assert status == 200, body
        named = [p["name"] for p in body["results"] if p["pid"] == server.pid]
        if named or time.monotonic() > deadline:
            [name] = named
            return name
        time.sleep(0.1)
