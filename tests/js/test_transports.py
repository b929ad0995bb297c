"""The JavaScript client in Chromium falls back from WebSocket to Server-Sent Events
to long-poll behind a proxy that breaks them (proxy.py), against the real server,
and still delivers every stored event exactly once, in order."""

from tests.browser.test_dashboard import log_in
from tests.e2e.test_server import stored_events
from tests.factories import chain, node

# About five seconds of events: a log line every 0.4 s.
STEPS = []
for n in range(12):
    STEPS += [node(f"say{n}", "log", message=f"line {n}"), node(f"wait{n}", "delay", seconds=0.4)]
TICKING = chain(*STEPS)

# Timings short enough for a test, in the proportions of the defaults (the
# server's event-stream heartbeat is 0.5 s here: see conftest.server_env).
FAST = """{
  heartbeatMs: 400, pongTimeoutMs: 400, probeMs: 300, openTimeoutMs: 1500,
  sseSilenceMs: 1500, pollWaitS: 2, pollGraceMs: 1000, pollIntervalMs: 100,
  backoff: { initialMs: 50, maxMs: 200 },
}"""

HARNESS = """<!doctype html><script type="module">
import { ExecutionSocket, ExecutionStream } from "/__test__/js/index.js";

const FAST = FAST_OPTIONS;
window.ExecutionStream = ExecutionStream;
window.seen = { events: {}, states: [], ends: {}, executions: {} };
const record = (id) => (message) => (seen.events[id] ??= []).push([message.seq, message.type]);
const state = (state, detail) => seen.states.push([state, detail.transport]);

window.follow = (id) => {
  window.client = new ExecutionStream(id, {
    ...FAST, lastSeq: 0, onEvent: record(id), onStateChange: state,
    onEnd: (message) => (seen.ends[id] = message.status),
  }).start();
};
window.followMany = (ids) => {
  window.client = new ExecutionSocket({ ...FAST, onStateChange: state }).start();
  client.feed({}, { onExecution: (e) => (seen.executions[e.id] = [e.status, e.last_seq]) });
  window.subscribe = (id) => client.subscribe(id, {
    lastSeq: 0, onEvent: record(id), onEnd: (message) => (seen.ends[id] = message.status),
  });
  ids.forEach(subscribe);
};
window.ready = true;
</script>""".replace("FAST_OPTIONS", FAST)


def start_run(server) -> str:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "ticking", "definition": TICKING}
    )
    assert status == 201, workflow
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
    )
    assert status == 201, execution
    return execution["id"]


def open_harness(page, server, proxy) -> None:
    log_in(page, server)  # the session cookie is the host's: the proxy's port gets it too
    proxy.pages["transports.html"] = HARNESS
    page.goto(f"{proxy.url}/__test__/page/transports.html")
    page.wait_for_function("window.ready === true")


def delivered(page, execution_id: str) -> list[list]:
    return page.evaluate("(id) => seen.events[id] ?? []", execution_id)


def stored(server, execution_id: str) -> list[list]:
    return [[event["seq"], event["type"]] for event in stored_events(server, execution_id)]


def live_transports(page) -> list[str]:
    """The transport of each connection that opened, in order, repeats folded."""
    opened = [transport for state, transport in page.evaluate("seen.states") if state == "live"]
    return [t for i, t in enumerate(opened) if i == 0 or opened[i - 1] != t]


def wait_until_ended(page, execution_id: str) -> None:
    page.wait_for_function("(id) => seen.ends[id] !== undefined", arg=execution_id, timeout=30_000)


def test_a_refused_upgrade_falls_back_to_server_sent_events(server, proxy, page):
    proxy.mode = "refuse-upgrade"
    execution_id = start_run(server)
    open_harness(page, server, proxy)

    page.evaluate("(id) => follow(id)", execution_id)
    wait_until_ended(page, execution_id)

    assert delivered(page, execution_id) == stored(server, execution_id)
    assert page.evaluate(f"seen.ends['{execution_id}']") == "completed"
    assert live_transports(page) == ["sse"]
    assert [mode for mode, _ in proxy.upgrades] == ["refuse-upgrade"]
    assert page.evaluate("[client.state, client.transport]") == ["ended", "sse"]


def test_a_proxy_that_starts_buffering_mid_run_ends_on_long_poll_resuming_exactly(
    server, proxy, page
):
    execution_id = start_run(server)
    open_harness(page, server, proxy)
    page.evaluate("(id) => follow(id)", execution_id)
    page.wait_for_function("(id) => (seen.events[id] ?? []).length >= 6", arg=execution_id)

    proxy.mode = "buffer"  # frames and streams held from now on, long-polls once answered
    wait_until_ended(page, execution_id)

    events = delivered(page, execution_id)
    assert events == stored(server, execution_id)  # each once, in order, across the switches
    # The socket was lost, opened again and silent; the event stream never answered.
    assert live_transports(page) == ["websocket", "long-poll"]
    tried = [transport for state, transport in page.evaluate("seen.states")]
    assert (
        tried.index("sse") > tried.index("websocket")
        and "sse" not in tried[tried.index("long-poll") :]
    )
    assert [mode for mode, _ in proxy.upgrades] == ["pass", "buffer"]
    assert page.evaluate("client.transport") == "long-poll"


def test_many_executions_and_the_feed_resume_on_one_event_stream(server, proxy, page):
    proxy.mode = "refuse-upgrade"
    first = start_run(server)
    open_harness(page, server, proxy)
    page.evaluate("(id) => followMany([id])", first)
    page.wait_for_function("(id) => (seen.events[id] ?? []).length >= 4", arg=first)

    # A second subscription opens the stream again for both: the first resumes
    # after its last seq (the composite Last-Event-ID), the feed from its cursor.
    second = start_run(server)
    page.evaluate("(id) => subscribe(id)", second)
    wait_until_ended(page, first)
    wait_until_ended(page, second)

    for execution_id in (first, second):
        assert delivered(page, execution_id) == stored(server, execution_id)
    page.wait_for_function(
        "(ids) => ids.every((id) => seen.executions[id]?.[0] === 'completed')", arg=[first, second]
    )
    executions = page.evaluate("seen.executions")
    assert executions[first] == ["completed", stored(server, first)[-1][0]]
    assert executions[second] == ["completed", stored(server, second)[-1][0]]
    assert set(live_transports(page)) == {"sse"}
    assert page.evaluate("client.transport") == "sse"


def test_each_fallback_alone_delivers_every_event_once(server, proxy, page):
    execution_id = start_run(server)
    open_harness(page, server, proxy)

    page.evaluate(
        """(id) => {
            for (const transport of ["sse", "long-poll"]) {
                new ExecutionStream(id, {
                    lastSeq: 0, transports: [transport], pollWaitS: 2,
                    onEvent: (m) => (seen.events[transport] ??= []).push([m.seq, m.type]),
                    onEnd: (m) => (seen.ends[transport] = m.status),
                }).start();
            }
        }""",
        execution_id,
    )
    wait_until_ended(page, "sse")
    wait_until_ended(page, "long-poll")

    assert delivered(page, "sse") == stored(server, execution_id)
    assert delivered(page, "long-poll") == stored(server, execution_id)
    assert proxy.upgrades == []
