"""The dashboard in real Chromium against the real server (daphne, a subprocess)."""

import json
import re

import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect

from bench.processes import DEMO_PASSWORD
from tests.e2e.test_server import stored_events
from tests.factories import chain, node

CHECKOUT = {
    "nodes": [
        node("hello", "log", message="hello from the browser", level="info"),
        node("wait", "delay", seconds=1.5),
        node("left", "transform", expression="{doubled: n}"),
        node("right", "log", message="careful", level="warning"),
        node("join", "transform", expression="{left: left.doubled, right: right.n}"),
    ],
    "edges": [
        {"source": "hello", "target": "wait"},
        {"source": "wait", "target": "left"},
        {"source": "wait", "target": "right"},
        {"source": "left", "target": "join"},
        {"source": "right", "target": "join"},
    ],
}
LINES = chain(
    node("first", "log", message="line one", level="info"),
    node("wait", "delay", seconds=1.5),
    node("second", "log", message="line two", level="info"),
    node("pause", "delay", seconds=0.3),
    node("third", "log", message="line three", level="warning"),
)
DURATION = re.compile(r"^\d+\.\d\d s$")


@pytest.fixture
def server_env() -> dict:
    # A lost run noticed within about two seconds.
    return {
        "EXECUTIONS_LEASE_SECONDS": "2",
        "EXECUTIONS_REAPER_INTERVAL": "0.2",
    }


def log_in(page, server) -> None:
    page.goto(f"{server.url}/")
    page.wait_for_url(re.compile(r"/login/\?next=/$"))
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("main button[type=submit]")  # the login form's (the header has the language switch)
    page.wait_for_url(f"{server.url}/")


def page_log_lines(page) -> list[tuple[int, str, str]]:
    return page.eval_on_selector_all(
        ".log-line",
        """lines => lines.map(line => [Number(line.dataset.seq),
            line.querySelector('.log-source').textContent,
            line.querySelector('.log-message').textContent])""",
    )


def stored_log_lines(server, execution_id: str) -> list[tuple[int, str, str]]:
    return [
        [event["seq"], event["node_id"] or "engine", event["message"]]
        for event in stored_events(server, execution_id)
        if event["type"] == "log"
    ]


def test_start_a_workflow_from_the_ui_and_watch_it_complete(server, context):
    page = context.new_page()
    log_in(page, server)
    listing = context.new_page()
    listing_sockets = []
    listing.on("websocket", lambda socket: listing_sockets.append(socket.url))
    listing.goto(f"{server.url}/")
    page.bring_to_front()  # a background tab's animation frames are throttled

    # The API's validation errors appear under the field they are about.
    page.goto(f"{server.url}/workflows/new/")
    page.fill("#name", "checkout")
    page.fill("#definition", json.dumps({"nodes": [node("a", "sleep")], "edges": []}))
    page.click("#save")
    expect(page.locator('[data-error-for="definition"]')).to_contain_text(
        "node 'a': unknown type 'sleep'"
    )
    page.fill("#definition", json.dumps(CHECKOUT))
    page.click("#save")
    page.wait_for_url(re.compile(r"/workflows/[0-9a-f-]+/\?created=1$"))
    page.fill("#input_data", "[1]")
    page.click("#start")
    expect(page.locator('[data-error-for="input_data"]')).to_have_text(
        "input_data must be a JSON object, not list."
    )
    page.fill("#input_data", '{"n": 5}')
    page.click("#start")
    page.wait_for_url(re.compile(r"/executions/[0-9a-f-]+/$"))
    execution_id = page.url.rstrip("/").rsplit("/", 1)[1]

    expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#execution-page")).to_have_attribute("data-settled", "true")
    expect(page.locator("#connection")).to_have_attribute("data-state", "ended")
    assert DURATION.match(page.text_content("#duration"))
    assert re.search(r"\d{4}", page.text_content("#finished-at"))  # a date, not a dash
    expect(page.locator("#progress-value")).to_have_text("100%")
    assert json.loads(page.text_content("#result")) == {"left": 5, "right": 5}
    cards = page.locator(".dag-node")
    assert cards.evaluate_all("cards => cards.map(c => c.dataset.nodeId)") == [
        "hello",
        "wait",
        "left",
        "right",
        "join",
    ]
    for card in cards.all():
        assert card.get_attribute("data-status") == "completed"
        assert DURATION.match(card.locator(".dag-node-duration").text_content())
    wait = float(page.text_content('[data-node-id="wait"] .dag-node-duration').split()[0])
    assert 1.5 <= wait < 3
    expect(page.locator("#node-summary")).to_have_text("5 of 5 done")
    lines = page_log_lines(page)
    assert lines == stored_log_lines(server, execution_id)
    assert ["hello", "hello from the browser"] in [line[1:] for line in lines]
    assert ["right", "careful"] in [line[1:] for line in lines]

    # The list, open all along, picked up the new execution and followed it live.
    row = listing.locator(f'tr[data-execution-id="{execution_id}"]')
    expect(row).to_have_attribute("data-status", "completed")
    expect(row.locator(".badge")).to_have_text("Completed")
    expect(row.locator(".progress-text")).to_have_text("100%")
    assert listing_sockets == [f"{server.ws_url}/api/v1/ws"]
    listing.close()


def test_the_page_recovers_every_missing_log_line_once_after_a_server_restart(server, context):
    status, workflow = server.request(
        "POST",
        "/api/v1/workflows",
        {"name": "lines", "definition": LINES, "retry_on_worker_loss": True},
    )
    assert status == 201, workflow
    page = context.new_page()
    log_in(page, server)
    # Leave the live list, whose socket would be counted among the page's.
    page.goto("about:blank")
    streams = watch_sockets(page)
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
    )
    assert status == 201, execution
    page.goto(f"{server.url}/executions/{execution['id']}/")
    expect(page.locator(".log-message", has_text="line one")).to_have_count(1)

    # The server dies mid-run; while it is down and restarting the page cannot
    # reconnect (offline), so everything recorded meanwhile is missed live.
    context.set_offline(True)
    server.stop(crash=True)
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    _, first_frames = streams[0]
    seen_before = first_frames[-1]["seq"]
    server.start()
    wait_until_finished(server, execution["id"])
    context.set_offline(False)

    expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#execution-page")).to_have_attribute("data-settled", "true")
    stored = stored_log_lines(server, execution["id"])
    assert page_log_lines(page) == stored
    messages = [message for _, _, message in stored]
    assert messages.count("line one") == 2  # the run, then the rerun after the restart
    assert messages.count("line two") == messages.count("line three") == 1
    assert any("running the execution again from the start" in m for m in messages)
    missed = [seq for seq, _, _ in stored if seq > seen_before]
    assert len(missed) >= 5, "the rerun's lines were all recorded while the page was away"
    # The first socket replayed from the start; the last one resumed after the
    # last event the page had, and brought each missing event exactly once.
    assert streams[0][0].endswith("?last_seq=0")
    assert [m["seq"] for m in first_frames] == list(range(1, seen_before + 1))
    resumed_url, resumed_frames = streams[-1]
    assert resumed_url.endswith(f"?last_seq={seen_before}")
    last_seq = stored_events(server, execution["id"])[-1]["seq"]
    assert [m["seq"] for m in resumed_frames] == list(range(seen_before + 1, last_seq + 1))
    for card in page.locator(".dag-node").all():
        assert card.get_attribute("data-status") == "completed"


def watch_sockets(page) -> list[tuple[str, list[dict]]]:
    """Every socket the page opens, with the messages it receives, in order."""
    streams = []

    def opened(socket) -> None:
        frames: list[dict] = []
        streams.append((socket.url, frames))
        socket.on("framereceived", lambda frame: frames.append(json.loads(frame)))

    page.on("websocket", opened)
    return streams


def wait_until_finished(server, execution_id: str) -> None:
    """Follow the execution over its own socket until the server closes it at the end."""
    url = f"{server.ws_url}/api/v1/ws/executions/{execution_id}"
    headers = {"Authorization": f"Bearer {server.token}"}
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        last = None
        for frame in socket:
            last = json.loads(frame)
    assert last["type"] == "status" and last["status"] == "completed", last
