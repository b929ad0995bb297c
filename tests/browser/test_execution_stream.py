"""The JavaScript client (clients/js: execution-stream.js) in Chromium, against a scripted socket.

A fake socket lets each test play the server exactly: gaps, duplicates,
dropped connections, silent connections, refusals. The events endpoint is
answered by the test, which records what the client asked for.
"""

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

STATIC = Path(__file__).resolve().parents[2] / "clients/js/src"
ORIGIN = "http://stream.test"
EXECUTION = "0b6f1c1e-7a49-4c1f-9d84-2f1f0c6d7a10"

HARNESS = """<!doctype html><script type="module">
import { ExecutionStream } from "/execution-stream.js";

class FakeSocket {
  constructor(url) {
    this.url = url; this.sent = []; this.readyState = 0; this.closedWith = null;
    window.sockets.push(this);
  }
  open() { this.readyState = 1; this.onopen({}); }
  emit(message) { this.onmessage({ data: JSON.stringify(message) }); }
  drop(code) { this.readyState = 3; this.onclose({ code, reason: "" }); }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code) { this.readyState = 3; this.closedWith = code; }
}

window.sockets = [];
window.until = (check) => new Promise((resolve, reject) => {
  const deadline = Date.now() + 5000;
  const poll = () => {
    if (check()) resolve();
    else if (Date.now() > deadline) reject(new Error(`still false after 5 s: ${check}`));
    else setTimeout(poll, 2);
  };
  poll();
});
window.follow = (options = {}) => {
  const seen = { events: [], ends: [], errors: [], fails: [], states: [], pongs: 0 };
  const stream = new ExecutionStream("EXECUTION_ID", {
    baseUrl: "ORIGIN",
    transports: ["websocket"],  // the fake socket's; the others: tests/js
    createSocket: (url) => new FakeSocket(url),
    onEvent: (message) => seen.events.push(message),
    onEnd: (message) => seen.ends.push(message.status),
    onError: (message) => seen.errors.push(message.message),
    onFail: (detail) => seen.fails.push(detail.code),
    onPong: () => (seen.pongs += 1),
    onStateChange: (state, detail) => seen.states.push([state, detail.delay ?? null]),
    ...options,
  });
  window.stream = stream;
  window.seen = seen;
  return stream.start();
};
window.ready = true;
</script>""".replace("EXECUTION_ID", EXECUTION).replace("ORIGIN", ORIGIN)


def status(seq: int, state: str = "running") -> dict:
    return {
        "type": "status",
        "execution_id": EXECUTION,
        "status": state,
        "progress": 100 if state == "completed" else 50,
        "message": state,
        "result": None,
        "error": None,
        "execution_time": None,
        "seq": seq,
        "timestamp": "2026-11-28T10:00:00.000000Z",
    }


def log(seq: int, text: str = "") -> dict:
    return {
        "type": "log",
        "execution_id": EXECUTION,
        "node_id": None,
        "level": "info",
        "message": text or f"line {seq}",
        "seq": seq,
        "timestamp": "2026-11-28T10:00:00.000000Z",
    }


def chunk(seq: int, data, node_id: str = "write", stream: str = "output") -> dict:
    return {
        "type": "chunk",
        "execution_id": EXECUTION,
        "node_id": node_id,
        "stream": stream,
        "data": data,
        "attempt": 1,
        "seq": seq,
        "timestamp": "2026-11-28T10:00:00.000000Z",
    }


class EventsEndpoint:
    """Answers GET /api/v1/executions/{id}/events?after=N from ``stored``, two per page."""

    def __init__(self, stored: list[dict], status_code: int = 200):
        self.stored = stored
        self.status_code = status_code
        self.requests: list[int] = []

    def __call__(self, route) -> None:
        query = parse_qs(urlsplit(route.request.url).query)
        after = int(query["after"][0])
        self.requests.append(after)
        if self.status_code != 200:
            route.fulfill(status=self.status_code, body="{}")
            return
        later = [event for event in self.stored if event["seq"] > after]
        page, rest = later[:2], later[2:]
        next_url = f"{ORIGIN}/api/v1/executions/{EXECUTION}/events?after={page[-1]['seq']}"
        body = {"next": next_url if rest else None, "results": page}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))


def serve_modules(page, harness: str) -> None:
    """Serve ``harness`` at the origin's root and the dashboard's modules beside it."""
    page.route(f"{ORIGIN}/", lambda route: route.fulfill(content_type="text/html", body=harness))
    page.route(
        f"{ORIGIN}/*.js",
        lambda route: route.fulfill(
            content_type="text/javascript",
            body=(STATIC / urlsplit(route.request.url).path.lstrip("/")).read_text(),
        ),
    )
    page.goto(f"{ORIGIN}/")
    page.wait_for_function("window.ready === true")


@pytest.fixture
def harness(page):
    serve_modules(page, HARNESS)
    return page


def serve_events(page, stored: list[dict], status_code: int = 200) -> EventsEndpoint:
    endpoint = EventsEndpoint(stored, status_code)
    page.route(f"{ORIGIN}/api/v1/executions/*/events*", endpoint)
    return endpoint


def seqs(page) -> list[int]:
    return page.evaluate("seen.events.map((e) => e.seq)")


def test_gaps_are_filled_from_the_events_endpoint_and_duplicates_dropped(harness):
    endpoint = serve_events(harness, [log(3, "filled 3"), log(4, "filled 4")])

    harness.evaluate(
        """async (messages) => {
            follow({ lastSeq: 0 });
            sockets[0].open();
            for (const message of messages) sockets[0].emit(message);
            await until(() => seen.ends.length === 1);
        }""",
        [status(1, "pending"), log(2), log(5), log(4, "duplicate"), log(2), status(6, "completed")],
    )

    events = harness.evaluate("seen.events")
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e["message"] for e in events if e["type"] == "log"] == [
        "line 2",
        "filled 3",
        "filled 4",
        "line 5",
    ]
    assert endpoint.requests == [2]
    assert harness.evaluate("seen.ends") == ["completed"]
    assert harness.evaluate("stream.state") == "ended"
    # It stops: the socket is closed, nothing reconnects, a late close is ignored.
    assert harness.evaluate("sockets[0].closedWith") == 1000
    harness.evaluate("sockets[0].drop(1006)")
    assert harness.evaluate("[sockets.length, stream._timers.reconnect]") == [1, None]
    assert harness.evaluate("sockets[0].url") == (
        f"ws://stream.test/api/v1/ws/executions/{EXECUTION}?last_seq=0"
    )


def test_a_dropped_connection_resumes_with_last_seq_after_a_growing_delay(harness):
    harness.evaluate(
        """async (messages) => {
            follow({ backoff: { initialMs: 40, maxMs: 1000 }, random: () => 1 });
            sockets[0].open();
            sockets[0].emit(messages[0]);          // the snapshot, as of seq 3
            await until(() => seen.events.length === 1);
            sockets[0].drop(1006);
            await until(() => sockets.length === 2);
            sockets[1].drop(1006);                 // the server is still down
            await until(() => sockets.length === 3);
            sockets[2].open();
            sockets[2].emit(messages[1]);
            sockets[2].emit(messages[2]);
            await until(() => seen.ends.length === 1);
        }""",
        [status(3), log(4), status(5, "completed")],
    )

    assert seqs(harness) == [3, 4, 5]
    urls = harness.evaluate("sockets.map((s) => s.url)")
    assert urls[0].endswith(f"/executions/{EXECUTION}")  # no last_seq: snapshot first
    assert all(url.endswith("?last_seq=3") for url in urls[1:])
    states = harness.evaluate("seen.states")
    assert [delay for state, delay in states if state == "reconnecting" and delay] == [40, 80]
    assert [state for state, _ in states][-2:] == ["live", "ended"]
    assert harness.evaluate("stream.reconnects") == 2


def test_backoff_is_exponential_capped_and_jittered(harness):
    delays = harness.evaluate(
        """() => {
            const low = follow({ backoff: { initialMs: 100, maxMs: 1000 }, random: () => 0 });
            const high = follow({ backoff: { initialMs: 100, maxMs: 1000 }, random: () => 1 });
            return [0, 1, 2, 3, 4, 5].map((n) => [low.backoffDelay(n), high.backoffDelay(n)]);
        }"""
    )

    assert delays == [[50, 100], [100, 200], [200, 400], [400, 800], [500, 1000], [500, 1000]]


def test_heartbeat_pings_and_a_silent_connection_is_replaced(harness):
    harness.evaluate(
        """async (snapshot) => {
            follow({ heartbeatMs: 20, pongTimeoutMs: 60, backoff: { initialMs: 1 } });
            sockets[0].open();
            sockets[0].emit(snapshot);
            await until(() => sockets[0].sent.length === 1);
            sockets[0].emit({ type: "pong" });     // alive: nothing happens
            await until(() => sockets.length === 2); // the next pings go unanswered
        }""",
        status(7),
    )

    sent = harness.evaluate("sockets[0].sent")
    assert sent[0] == {"type": "ping"}
    assert set(json.dumps(m) for m in sent) == {'{"type": "ping"}'}
    assert harness.evaluate("seen.pongs") == 1
    assert harness.evaluate("sockets[0].closedWith") == 1000
    assert harness.evaluate("sockets[1].url").endswith("?last_seq=7")


def test_a_refusal_stops_for_good(harness):
    harness.evaluate(
        """() => {
            follow();
            sockets[0].open();
            sockets[0].emit({ type: "error", message: "Execution not found" });
            sockets[0].drop(4404);
        }"""
    )

    assert harness.evaluate("seen.errors") == ["Execution not found"]
    assert harness.evaluate("seen.fails") == [4404]
    assert harness.evaluate("[stream.state, stream._timers.reconnect, sockets.length]") == [
        "failed",
        None,
        1,
    ]


def test_a_normal_close_without_the_terminal_status_reads_the_log(harness):
    endpoint = serve_events(harness, [log(2), status(3, "completed")])

    harness.evaluate(
        """async (snapshot) => {
            follow();
            sockets[0].open();
            sockets[0].emit(snapshot);
            await until(() => seen.events.length === 1);
            sockets[0].drop(1000);
            await until(() => seen.ends.length === 1);
        }""",
        status(1),
    )

    assert seqs(harness) == [1, 2, 3]
    assert endpoint.requests == [1]
    assert harness.evaluate("[stream.state, sockets.length]") == ["ended", 1]


def test_a_gap_the_endpoint_cannot_fill_is_recovered_by_resuming(harness):
    endpoint = serve_events(harness, [], status_code=503)

    harness.evaluate(
        """async (messages) => {
            follow({ lastSeq: 0, backoff: { initialMs: 1 } });
            sockets[0].open();
            sockets[0].emit(messages[0]);
            sockets[0].emit(messages[1]);      // seq 3: 2 is missing
            await until(() => sockets.length === 2);
            sockets[1].open();
            for (const message of messages.slice(2)) sockets[1].emit(message);
            await until(() => seen.ends.length === 1);
        }""",
        [status(1), log(3), log(2), log(3), status(4, "completed")],
    )

    assert endpoint.requests == [1]
    assert harness.evaluate("sockets[1].url").endswith("?last_seq=1")
    assert seqs(harness) == [1, 2, 3, 4]


def test_coming_back_online_reconnects_at_once(harness):
    harness.evaluate(
        """async (snapshot) => {
            follow({ backoff: { initialMs: 600000 } });
            sockets[0].open();
            sockets[0].emit(snapshot);
            await until(() => seen.events.length === 1);
            sockets[0].drop(1006);
            window.dispatchEvent(new Event("online"));
        }""",
        status(2),
    )

    assert harness.evaluate("sockets.length") == 2
    assert harness.evaluate("sockets[1].url").endswith("?last_seq=2")


def test_a_cut_result_is_read_whole_before_the_end_is_delivered(harness):
    whole = {"rows": list(range(100))}
    asked: list[str] = []

    def detail(route) -> None:
        asked.append(route.request.url)
        body = {"id": EXECUTION, "status": "completed", "result": whole}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    harness.route(f"{ORIGIN}/api/v1/executions/{EXECUTION}", detail)
    cut = {
        **status(2, "completed"),
        "result": json.dumps(whole)[:20] + "…",
        "result_truncated": True,
        "result_size": len(json.dumps(whole)),
    }

    harness.evaluate(
        """async (messages) => {
            follow({ lastSeq: 0, onEnd: (message) => seen.ends.push(message) });
            sockets[0].open();
            for (const message of messages) sockets[0].emit(message);
            await until(() => seen.ends.length === 1);
        }""",
        [status(1), cut],
    )

    assert asked == [f"{ORIGIN}/api/v1/executions/{EXECUTION}"]
    (end,) = harness.evaluate("seen.ends")
    assert end == {**status(2, "completed"), "result": whole}
    assert harness.evaluate("seen.events.at(-1)") == end
    assert harness.evaluate("stream.state") == "ended"


def test_an_event_type_newer_than_the_client_in_a_filled_gap_is_passed_over(harness):
    newer = {"type": "widget", "execution_id": EXECUTION, "seq": 3}
    endpoint = serve_events(harness, [newer])

    harness.evaluate(
        """async (messages) => {
            follow({ lastSeq: 0 });
            sockets[0].open();
            for (const message of messages) sockets[0].emit(message);
            await until(() => seen.ends.length === 1);
        }""",
        [status(1), log(2), log(4), status(5, "completed")],
    )

    assert seqs(harness) == [1, 2, 4, 5]
    assert endpoint.requests == [2]
    assert harness.evaluate("sockets.length") == 1


def test_chunks_reach_on_chunk_once_in_order_across_a_gap_and_a_resume(harness):
    endpoint = serve_events(harness, [chunk(5, "filled ")])

    harness.evaluate(
        """async ([before, after]) => {
            window.chunks = [];
            follow({
                lastSeq: 0,
                backoff: { initialMs: 1 },
                onChunk: (message) => chunks.push([message.seq, message.data]),
            });
            sockets[0].open();
            for (const message of before) sockets[0].emit(message);
            await until(() => chunks.length === 2);
            sockets[0].drop(1006);
            await until(() => sockets.length === 2);
            sockets[1].open();
            for (const message of after) sockets[1].emit(message);
            await until(() => seen.ends.length === 1);
        }""",
        [
            [status(1), chunk(2, "Hello, "), chunk(3, ["piece", {"n": 1}], stream="rows")],
            [
                chunk(3, ["piece", {"n": 1}], stream="rows"),  # again after the resume: dropped
                chunk(4, "world"),
                chunk(6, "\n"),  # 5 is missing: read from the events endpoint first
                chunk(4, "world"),
                status(7, "completed"),
            ],
        ],
    )

    assert harness.evaluate("chunks") == [
        [2, "Hello, "],
        [3, ["piece", {"n": 1}]],
        [4, "world"],
        [5, "filled "],
        [6, "\n"],
    ]
    assert seqs(harness) == [1, 2, 3, 4, 5, 6, 7]  # onEvent gets the chunks too
    assert harness.evaluate("sockets[1].url").endswith("?last_seq=3")
    assert endpoint.requests == [4]
