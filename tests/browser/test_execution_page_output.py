"""The execution page's streamed output panels in Chromium. The page, its login and
its REST API are the real server's; its execution socket is played by the test, so
that ``chunk`` events can be sent whatever the server's node types stream."""

import json
import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.browser.test_dashboard import log_in
from tests.factories import node

DEFINITION = {
    "nodes": [node("write", "log", message="writing"), node("rows", "transform", expression="@")],
    "edges": [{"source": "write", "target": "rows"}],
}
TIMESTAMP = "2026-11-28T10:00:00.000000Z"


class ScriptedSockets:
    """Stands in for the server behind every execution socket the page opens."""

    def __init__(self, page):
        self.opened = []
        page.route_web_socket(re.compile(r"/api/v1/ws/executions/"), self._opened)

    def _opened(self, socket) -> None:
        self.opened.append(socket)

    def send(self, messages: list[dict]) -> None:
        """Send ``messages`` on the socket opened last."""
        for message in messages:
            self.opened[-1].send(json.dumps(message))


class Events:
    """Messages of one execution, as the server would send them."""

    def __init__(self, execution_id: str):
        self.execution_id = execution_id

    def _message(self, kind: str, seq: int, **fields) -> dict:
        return {"type": kind, "execution_id": self.execution_id, **fields, "seq": seq}

    def status(self, seq: int, state: str = "running") -> dict:
        fields = {"progress": 50, "message": state, "result": None, "error": None}
        return self._message("status", seq, status=state, execution_time=None, **fields)

    def node(self, seq: int, node_id: str, state: str, attempt: int = 1) -> dict:
        fields = {"node_type": "log", "status": state, "attempt": attempt}
        return self._message("node", seq, node_id=node_id, **fields, timestamp=TIMESTAMP)

    def chunk(self, seq: int, node_id: str, stream: str, data, **fields) -> dict:
        fields = {"attempt": 1, **fields, "timestamp": TIMESTAMP}
        return self._message("chunk", seq, node_id=node_id, stream=stream, data=data, **fields)


@pytest.fixture
def execution_id(server) -> str:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "streams", "definition": DEFINITION}
    )
    assert status == 201, workflow
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
    )
    assert status == 201, execution
    return execution["id"]


def serve_streams(page, server, execution_id: str, streams: dict) -> None:
    """Answer the page's read of the execution with ``streams`` (node id: its
    streams) in its nodes, as a server with streamed output does."""

    def answer(route) -> None:
        response = route.fetch()
        body = response.json()
        for run in body["nodes"]:
            if run["node_id"] in streams:
                run["streams"] = streams[run["node_id"]]
        route.fulfill(response=response, json=body)

    page.route(f"{server.url}/api/v1/executions/{execution_id}", answer)


def panel_selector(node_id: str, stream: str) -> str:
    return f'.stream-panel[data-node-id="{node_id}"][data-stream="{stream}"] .stream-text'


def output(page, node_id: str, stream: str) -> str | None:
    selector = panel_selector(node_id, stream)
    return page.evaluate("(s) => document.querySelector(s)?.textContent ?? null", selector)


def wait_for_output(page, node_id: str, stream: str, text: str) -> None:
    """Wait until the panel of ``node_id``'s ``stream`` holds exactly ``text``."""
    try:
        page.wait_for_function(
            "([s, text]) => document.querySelector(s)?.textContent === text",
            arg=[panel_selector(node_id, stream), text],
        )
    except PlaywrightTimeoutError:
        assert output(page, node_id, stream) == text
        raise


def open_page(page, server, execution_id: str) -> None:
    page.goto(f"{server.url}/executions/{execution_id}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def test_streamed_output_is_shown_live_and_once_after_a_reload(server, page, execution_id):
    sockets = ScriptedSockets(page)
    streams: dict = {}
    serve_streams(page, server, execution_id, streams)
    log_in(page, server)
    events = Events(execution_id)
    replay = [
        events.status(1, "pending"),
        events.status(2),
        events.node(3, "write", "running"),
        events.chunk(4, "write", "output", "Hello, "),
        events.chunk(5, "write", "output", "<b>world</b>\n"),
        events.node(6, "write", "completed"),
        events.node(7, "rows", "running"),
        events.chunk(8, "rows", "items", ["a", {"n": 1}]),
    ]

    open_page(page, server, execution_id)
    expect(page.locator("#streams-card")).to_be_hidden()
    sockets.send(replay)

    wait_for_output(page, "rows", "items", '"a"\n{"n":1}\n')
    assert output(page, "write", "output") == "Hello, <b>world</b>\n"
    assert page.locator(".stream-text b").count() == 0  # text, never markup
    assert page.locator(".stream-title").all_text_contents() == ["write · output", "rows · items"]

    # A reload shows what the server read back, then goes on from the replay.
    streams.update(write={"output": "Hello, <b>world</b>\n"}, rows={"items": ["a", {"n": 1}]})
    page.reload()
    wait_for_output(page, "write", "output", "Hello, <b>world</b>\n")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert [socket.url.rsplit("?", 1)[1] for socket in sockets.opened] == ["last_seq=0"] * 2
    sockets.send([*replay, events.chunk(9, "write", "output", "again")])
    wait_for_output(page, "write", "output", "Hello, <b>world</b>\nagain")
    assert output(page, "rows", "items") == '"a"\n{"n":1}\n'

    # A retry starts the node's streams again.
    sockets.send(
        [
            events.node(10, "rows", "failed"),
            events.node(11, "rows", "running", attempt=2),
            events.chunk(12, "rows", "items", [2], attempt=2),
        ]
    )
    wait_for_output(page, "rows", "items", "2\n")
    assert output(page, "write", "output") == "Hello, <b>world</b>\nagain"


def scroll(page, to: str) -> None:
    """Scroll the panel to ``to`` (``0``, or ``end``) and wait for its scroll event."""
    page.evaluate(
        """(to) => new Promise((resolve) => {
            const text = document.querySelector(".stream-text");
            text.addEventListener("scroll", resolve, { once: true });
            text.scrollTop = to === "end" ? text.scrollHeight : 0;
        })""",
        to,
    )


AT_THE_END = """() => {
    const text = document.querySelector(".stream-text");
    return text.scrollTop > 0 && text.scrollHeight - text.scrollTop - text.clientHeight < 2;
}"""


def after_two_frames(page) -> None:
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_a_long_stream_keeps_its_newest_text_and_its_tail_in_view_unless_scrolled_up(
    server, page, execution_id
):
    sockets = ScriptedSockets(page)
    log_in(page, server)
    events = Events(execution_id)
    lines = "".join(f"line {n}\n" for n in range(1000))
    open_page(page, server, execution_id)

    # A burst, each chunk arriving while the panel's last scroll to its end is
    # still to be reported: it keeps up with the tail all along.
    burst = [lines[n : n + 100] for n in range(0, len(lines), 100)]
    sockets.send([events.node(1, "write", "running")])
    sockets.send([events.chunk(2 + n, "write", "output", text) for n, text in enumerate(burst)])
    wait_for_output(page, "write", "output", lines)
    page.wait_for_function(AT_THE_END)
    expect(page.locator(".stream-dropped")).to_be_hidden()
    seq = 2 + len(burst)

    # Scrolled up to read: more text, past the panel's limit, does not move it.
    scroll(page, "0")
    more = ["x" * 100_000 + "\n", "y" * 150_000]
    sockets.send([events.chunk(seq + n, "write", "output", text) for n, text in enumerate(more)])
    kept = (lines + "".join(more))[-200_000:]
    wait_for_output(page, "write", "output", kept)
    after_two_frames(page)
    assert page.evaluate("() => document.querySelector('.stream-text').scrollTop") == 0
    expect(page.locator(".stream-dropped")).to_be_visible()

    # Scrolled back down, it follows again.
    scroll(page, "end")
    sockets.send([events.chunk(seq + 2, "write", "output", "\nend\n", stream_truncated=True)])
    wait_for_output(page, "write", "output", (kept + "\nend\n")[-200_000:])
    after_two_frames(page)
    assert page.evaluate(AT_THE_END)
    expect(page.locator(".streams-cut")).to_be_visible()
