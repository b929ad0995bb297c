"""The multiplexed JavaScript client (clients/js: execution-socket.js) in Chromium, against a
scripted socket: the test plays the server of ``/api/v1/ws`` message by message."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.test_execution_stream import serve_modules

ORIGIN = "http://stream.test"
FIRST = "0b6f1c1e-7a49-4c1f-9d84-2f1f0c6d7a10"
SECOND = "5e0c9a4b-3f2d-4d8e-8a61-7c1b2e9f4d03"

HARNESS = """<!doctype html><script type="module">
import { ExecutionSocket } from "/execution-socket.js";

class FakeSocket {
  constructor(url) {
    this.url = url; this.sent = []; this.sentAt = []; this.readyState = 0; this.closedWith = null;
    window.sockets.push(this);
  }
  open() { this.readyState = 1; this.onopen({}); }
  emit(message) { this.onmessage({ data: JSON.stringify(message) }); }
  drop(code) { this.readyState = 3; this.onclose({ code, reason: "" }); }
  send(data) { this.sent.push(JSON.parse(data)); this.sentAt.push(performance.now()); }
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
window.seen = { events: {}, ends: {}, fails: {}, errors: [], executions: [], feedFails: [] };
window.connect = (options = {}) => {
  window.socket = new ExecutionSocket({
    baseUrl: "ORIGIN",
    transports: ["websocket"],  // the fake socket's; the others: tests/js
    createSocket: (url) => new FakeSocket(url),
    backoff: { initialMs: 1, maxMs: 1 },
    onError: (message) => seen.errors.push(message.message),
    ...options,
  });
  return window.socket.start();
};
window.follow = (id, options = {}) => {
  seen.events[id] = [];
  return socket.subscribe(id, {
    onEvent: (message) => seen.events[id].push([message.seq, message.type]),
    onEnd: (message) => (seen.ends[id] = message.status),
    onFail: (detail) => (seen.fails[id] = detail.code),
    ...options,
  });
};
window.watchFeed = (filter, options = {}) => socket.feed(filter, {
  onExecution: (state) => seen.executions.push([state.id, state.last_seq]),
  onFail: (detail) => seen.feedFails.push(detail.code),
  ...options,
});
window.ready = true;
</script>""".replace("ORIGIN", ORIGIN)


def status(execution: str, seq: int, state: str = "running") -> dict:
    return {
        "type": "status",
        "execution_id": execution,
        "status": state,
        "progress": 100 if state == "completed" else 50,
        "message": state,
        "result": None,
        "error": None,
        "execution_time": None,
        "seq": seq,
        "timestamp": "2026-11-28T10:00:00.000000Z",
    }


def log(execution: str, seq: int) -> dict:
    return {
        "type": "log",
        "execution_id": execution,
        "node_id": None,
        "level": "info",
        "message": f"line {seq}",
        "seq": seq,
        "timestamp": "2026-11-28T10:00:00.000000Z",
    }


def chunk(execution: str, seq: int, data: str) -> dict:
    return {
        "type": "chunk",
        "execution_id": execution,
        "node_id": "write",
        "stream": "output",
        "data": data,
        "attempt": 1,
        "seq": seq,
        "timestamp": "2026-11-28T10:00:00.000000Z",
    }


def ended(execution: str) -> dict:
    return {"type": "unsubscribed", "execution_id": execution, "reason": "ended"}


def execution(execution_id: str, last_seq: int, cursor: str) -> dict:
    state = {
        "id": execution_id,
        "workflow_id": "9d1c4a52-1111-4c3e-8f2a-1b2c3d4e5f60",
        "workflow_name": "nightly",
        "status": "running",
        "progress": last_seq * 10,
        "message": f"as of {last_seq}",
        "execution_time": None,
        "created_at": "2026-11-28T10:00:00.000000Z",
        "started_at": "2026-11-28T10:00:00.100000Z",
        "finished_at": None,
        "tags": ["nightly"],
        "last_seq": last_seq,
    }
    return {"type": "execution", "feed": "executions", "execution": state, "cursor": cursor}


@pytest.fixture
def harness(page):
    serve_modules(page, HARNESS)
    return page


def serve_events(page, execution_id: str, stored: list[dict]) -> list[int]:
    """Answer the events endpoint of ``execution_id`` from ``stored``; the ``after`` asked."""
    asked: list[int] = []

    def answer(route) -> None:
        after = int(parse_qs(urlsplit(route.request.url).query)["after"][0])
        asked.append(after)
        body = {"next": None, "results": [e for e in stored if e["seq"] > after]}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route(f"{ORIGIN}/api/v1/executions/{execution_id}/events*", answer)
    return asked


def test_each_execution_gets_its_events_once_in_order_across_a_reconnect(harness):
    asked = serve_events(harness, SECOND, [log(SECOND, 7)])

    harness.evaluate(
        """async ([before, after]) => {
            connect();
            follow(FIRST, { lastSeq: 0 });
            follow(SECOND);                            // a snapshot first
            sockets[0].open();
            for (const message of before) sockets[0].emit(message);
            await until(() => seen.events[SECOND].length === 2);
            sockets[0].drop(1006);                     // lost: reconnect, resubscribe
            await until(() => sockets.length === 2);
            sockets[1].open();
            for (const message of after) sockets[1].emit(message);
            await until(() => seen.ends[FIRST] && seen.ends[SECOND]);
        }""".replace("FIRST", json.dumps(FIRST)).replace("SECOND", json.dumps(SECOND)),
        [
            [status(FIRST, 1), log(FIRST, 2), status(SECOND, 5), log(FIRST, 2), log(SECOND, 6)],
            [
                log(FIRST, 2),  # sent again after the resume: dropped
                log(SECOND, 6),
                log(FIRST, 3),
                log(SECOND, 8),  # 7 is missing: read from the events endpoint first
                status(FIRST, 4, "completed"),
                ended(FIRST),
                log(SECOND, 7),
                status(SECOND, 9, "failed"),
                ended(SECOND),
            ],
        ],
    )

    events = harness.evaluate("seen.events")
    assert events[FIRST] == [[1, "status"], [2, "log"], [3, "log"], [4, "status"]]
    assert events[SECOND] == [[5, "status"], [6, "log"], [7, "log"], [8, "log"], [9, "status"]]
    assert asked == [6]
    assert harness.evaluate("seen.ends") == {FIRST: "completed", SECOND: "failed"}
    assert harness.evaluate("sockets.map((s) => s.url)") == ["ws://stream.test/api/v1/ws"] * 2
    assert harness.evaluate("sockets[0].sent") == [
        {"type": "subscribe", "execution_id": FIRST, "last_seq": 0},
        {"type": "subscribe", "execution_id": SECOND},
    ]
    assert harness.evaluate("sockets[1].sent") == [
        {"type": "subscribe", "execution_id": FIRST, "last_seq": 2},
        {"type": "subscribe", "execution_id": SECOND, "last_seq": 6},
    ]
    # Both ended: nothing is followed, and the socket stays open for more.
    assert harness.evaluate("[socket.subscriptions.size, socket.state]") == [0, "live"]


def test_each_subscription_gets_its_chunks_once_in_order_across_a_reconnect(harness):
    harness.evaluate(
        """async ([before, after]) => {
            connect();
            seen.chunks = [];
            const onChunk = (message) => seen.chunks.push([message.execution_id, message.seq]);
            follow(FIRST, { lastSeq: 0, onChunk });
            follow(SECOND, { lastSeq: 0, onChunk });
            sockets[0].open();
            for (const message of before) sockets[0].emit(message);
            await until(() => seen.chunks.length === 2);
            sockets[0].drop(1006);
            await until(() => sockets.length === 2);
            sockets[1].open();
            for (const message of after) sockets[1].emit(message);
            await until(() => seen.ends[FIRST] && seen.ends[SECOND]);
        }""".replace("FIRST", json.dumps(FIRST)).replace("SECOND", json.dumps(SECOND)),
        [
            [status(FIRST, 1), chunk(FIRST, 2, "a"), status(SECOND, 1), chunk(SECOND, 2, "b")],
            [
                chunk(FIRST, 2, "a"),  # sent again after the resume: dropped
                chunk(SECOND, 2, "b"),
                chunk(SECOND, 3, "c"),
                chunk(FIRST, 3, "d"),
                status(FIRST, 4, "completed"),
                status(SECOND, 4, "completed"),
            ],
        ],
    )

    chunks = harness.evaluate("seen.chunks")
    assert [seq for execution_id, seq in chunks if execution_id == FIRST] == [2, 3]
    assert [seq for execution_id, seq in chunks if execution_id == SECOND] == [2, 3]
    assert harness.evaluate("seen.events")[FIRST] == [
        [1, "status"],
        [2, "chunk"],
        [3, "chunk"],
        [4, "status"],
    ]
    assert harness.evaluate("sockets[1].sent") == [
        {"type": "subscribe", "execution_id": FIRST, "last_seq": 2},
        {"type": "subscribe", "execution_id": SECOND, "last_seq": 2},
    ]


def test_the_feed_resumes_from_its_last_cursor_and_passes_on_only_newer_states(harness):
    harness.evaluate(
        """async ([before, after]) => {
            connect();
            window.list = watchFeed({ status: ["running"], tag: "", workflow_id: null });
            sockets[0].open();
            for (const message of before) sockets[0].emit(message);
            sockets[0].drop(1006);
            await until(() => sockets.length === 2);
            sockets[1].open();
            for (const message of after) sockets[1].emit(message);
        }""",
        [
            [
                execution(FIRST, 3, "sl:10"),
                execution(SECOND, 2, "sl:12"),
                execution(FIRST, 3, "sl:12"),  # the same state again
                execution(FIRST, 2, "sl:14"),  # an older one
            ],
            [execution(FIRST, 3, "sl:15"), execution(FIRST, 5, "sl:15")],
        ],
    )

    subscribe = {"type": "subscribe", "feed": "executions", "filter": {"status": ["running"]}}
    assert harness.evaluate("sockets[0].sent") == [subscribe]
    assert harness.evaluate("sockets[1].sent") == [{**subscribe, "cursor": "sl:14"}]
    assert harness.evaluate("seen.executions") == [[FIRST, 3], [SECOND, 2], [FIRST, 5]]
    assert harness.evaluate("list.cursor") == "sl:15"
    assert harness.evaluate("[...list.states.values()].map((s) => [s.id, s.last_seq])") == [
        [SECOND, 2],
        [FIRST, 5],
    ]


def test_a_replaced_feed_hears_nothing_of_the_one_before(harness):
    harness.evaluate(
        """async ([old, fresh]) => {
            connect();
            window.first = watchFeed({ tag: "a" }, { onExecution: () => seen.errors.push("old") });
            sockets[0].open();
            window.second = watchFeed({ tag: "b" });
            sockets[0].emit(old);                   // sent before the unsubscribe was read
            sockets[0].emit({ type: "unsubscribed", feed: "executions", reason: "requested" });
            sockets[0].emit(fresh);
        }""",
        [execution(FIRST, 3, "sl:10"), execution(SECOND, 4, "sl:11")],
    )

    assert harness.evaluate("sockets[0].sent") == [
        {"type": "subscribe", "feed": "executions", "filter": {"tag": "a"}},
        {"type": "unsubscribe", "feed": "executions"},
        {"type": "subscribe", "feed": "executions", "filter": {"tag": "b"}},
    ]
    assert harness.evaluate("seen.executions") == [[SECOND, 4]]
    assert harness.evaluate("[first.state, second.state, second.cursor]") == [
        "stopped",
        "subscribed",
        "sl:11",
    ]
    assert harness.evaluate("seen.errors") == []


def test_a_refused_subscription_fails_alone_and_one_cut_short_resumes(harness):
    harness.evaluate(
        """async (messages) => {
            connect();
            follow(FIRST);
            follow(SECOND);
            sockets[0].open();
            for (const message of messages) sockets[0].emit(message);
            await until(() => sockets[0].sent.length === 4);
        }""".replace("FIRST", json.dumps(FIRST)).replace("SECOND", json.dumps(SECOND)),
        [
            {"type": "error", "execution_id": FIRST, "code": 4404, "message": "not found"},
            status(SECOND, 3),
            {"type": "error", "execution_id": SECOND, "code": 1013, "message": "try again"},
        ],
    )

    assert harness.evaluate("seen.fails") == {FIRST: 4404}
    assert harness.evaluate("sockets[0].sent.slice(2)") == [
        {"type": "unsubscribe", "execution_id": SECOND},
        {"type": "subscribe", "execution_id": SECOND, "last_seq": 3},
    ]
    assert harness.evaluate("[...socket.subscriptions.keys()]") == [SECOND]
    assert harness.evaluate("[socket.state, sockets.length]") == ["live", 1]
    assert harness.evaluate("seen.errors") == []  # each went to its own subscription


def test_a_silent_connection_is_replaced_and_a_refused_socket_stops(harness):
    harness.evaluate(
        """async () => {
            connect({ heartbeatMs: 20, pongTimeoutMs: 40 });
            follow(FIRST, { lastSeq: 4 });
            sockets[0].open();
            await until(() => sockets.length === 2);   // the pings went unanswered
            sockets[1].open();
            sockets[1].emit({ type: "error", message: "Log in again" });
            sockets[1].drop(4401);
        }""".replace("FIRST", json.dumps(FIRST))
    )

    subscribe = {"type": "subscribe", "execution_id": FIRST, "last_seq": 4}
    first, *pings = harness.evaluate("sockets[0].sent")
    assert first == subscribe
    assert pings and all(ping == {"type": "ping"} for ping in pings)
    assert harness.evaluate("sockets[0].closedWith") == 1000
    assert harness.evaluate("sockets[1].sent[0]") == subscribe
    assert harness.evaluate("seen.errors") == ["Log in again"]
    assert harness.evaluate("[socket.state, socket._timers.reconnect, sockets.length]") == [
        "failed",
        None,
        2,
    ]


def test_subscribe_requests_are_paced_under_the_servers_rate(harness):
    harness.evaluate(
        """async (ids) => {
            connect({ subscribesPerSecond: 3 });
            sockets[0].open();
            for (const id of ids) follow(id);
            await until(() => sockets[0].sent.length === ids.length);
        }""",
        [f"00000000-0000-4000-8000-00000000000{n}" for n in range(7)],
    )

    sent_at = harness.evaluate("sockets[0].sentAt")
    assert len(sent_at) == 7
    windows = [sent_at[0], sent_at[3], sent_at[6]]
    assert sent_at[2] - sent_at[0] < 100  # the first three at once
    assert windows[1] - windows[0] >= 990 and windows[2] - windows[1] >= 990


def test_nothing_is_delivered_after_stop_not_even_what_was_queued(harness):
    harness.evaluate(
        """async (messages) => {
            connect();
            const run = follow(FIRST, {
                lastSeq: 0,
                onStatus: (message) => message.seq === 2 && run.stop(),
            });
            sockets[0].open();
            for (const message of messages) sockets[0].emit(message);
            await until(() => sockets[0].sent.length === 2);
        }""".replace("FIRST", json.dumps(FIRST)),
        [status(FIRST, 1), status(FIRST, 2), log(FIRST, 3), status(FIRST, 4, "completed")],
    )

    assert harness.evaluate(f"seen.events[{json.dumps(FIRST)}]") == [[1, "status"], [2, "status"]]
    assert harness.evaluate("seen.ends") == {}
    assert harness.evaluate("sockets[0].sent[1]") == {"type": "unsubscribe", "execution_id": FIRST}
    assert harness.evaluate("socket.subscriptions.size") == 0
