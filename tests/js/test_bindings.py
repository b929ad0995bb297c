"""The Vue and React bindings (workflow-push/vue, workflow-push/react) rendering a live
run in Chromium: a component each, bundled with the real vue and react by esbuild,
against the real server; hidden mid-run, shown again, unmounted."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_dashboard import log_in
from tests.e2e.test_server import stored_events
from tests.factories import chain, node
from tests.js.conftest import bundle

PIECES = ["Hello, ", "live ", "world\n"]
RUN = chain(
    node("hello", "log", message="first line"),
    node("write", "test_stream", pieces=PIECES, pause=0.4),
    node("wait", "delay", seconds=1.0),
    node("bye", "log", message="last line"),
)

# Each renders the same markup from its hook's state, and offers mount() and unmount().
REACT = """
import { createElement as h } from "react";
import { createRoot } from "react-dom/client";
import { useExecution, useExecutionFeed } from "workflow-push/react";

function Run({ id }) {
  const run = useExecution(id, { pauseWhenHidden: true, backoff: { initialMs: 50 } });
  const { state, transport } = run.connection;
  return h("section", { id: "run", "data-status": run.status ?? "", "data-state": state,
                        "data-transport": transport ?? "" },
    h("ul", { id: "nodes" }, Object.values(run.nodes).map((n) =>
      h("li", { key: n.node_id, "data-node": n.node_id, "data-status": n.status }, n.node_id))),
    h("ol", { id: "logs" }, run.logs.map((l) =>
      h("li", { key: l.seq, "data-seq": l.seq }, l.message))),
    h("pre", { id: "output" }, run.chunks.write?.output ?? ""));
}

function Feed() {
  const feed = useExecutionFeed({ status: [] });
  return h("ul", { id: "feed", "data-state": feed.connection.state }, feed.executions.map((e) =>
    h("li", { key: e.id, "data-id": e.id, "data-status": e.status }, e.status)));
}

let root;
window.mount = (id) => {
  root = createRoot(document.getElementById("app"));
  root.render(h("main", null, h(Run, { id }), h(Feed)));
};
window.unmount = () => root.unmount();
window.ready = true;
"""

VUE = """
import { createApp, defineComponent, h } from "vue";
import { useExecution, useExecutionFeed } from "workflow-push/vue";

const Run = defineComponent({
  props: { id: String },
  setup(props) {
    const { status, nodes, logs, chunks, connection } = useExecution(
      () => props.id, { pauseWhenHidden: true, backoff: { initialMs: 50 } });
    return () => h("section", { id: "run", "data-status": status.value ?? "",
                                "data-state": connection.value.state,
                                "data-transport": connection.value.transport ?? "" }, [
      h("ul", { id: "nodes" }, Object.values(nodes.value).map((n) =>
        h("li", { key: n.node_id, "data-node": n.node_id, "data-status": n.status }, n.node_id))),
      h("ol", { id: "logs" }, logs.value.map((l) =>
        h("li", { key: l.seq, "data-seq": l.seq }, l.message))),
      h("pre", { id: "output" }, chunks.value.write?.output ?? ""),
    ]);
  },
});

const Feed = defineComponent({
  setup() {
    const { executions, connection } = useExecutionFeed({ status: [] });
    return () => h("ul", { id: "feed", "data-state": connection.value.state },
      executions.value.map((e) =>
        h("li", { key: e.id, "data-id": e.id, "data-status": e.status }, e.status)));
  },
});

let app;
window.mount = (id) => {
  app = createApp({ render: () => h("main", null, [h(Run, { id }), h(Feed)]) });
  app.mount("#app");
};
window.unmount = () => app.unmount();
window.ready = true;
"""

PAGE = """<!doctype html><div id="app"></div><script>
// document.hidden as the test says, announced the way a browser does.
window.hidden = false;
Object.defineProperty(document, "hidden", { configurable: true, get: () => window.hidden });
window.setHidden = (value) => {
  window.hidden = value;
  document.dispatchEvent(new Event("visibilitychange"));
};
</script><script type="module" src="BUNDLE"></script>"""

SOURCES = {"react": REACT, "vue": VUE}


def start_run(server) -> str:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "live", "definition": RUN}
    )
    assert status == 201, workflow
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
    )
    assert status == 201, execution
    return execution["id"]


@pytest.mark.parametrize("framework", ["vue", "react"])
def test_a_component_renders_a_live_run_pauses_while_hidden_and_closes(
    server, proxy, bundles, page, framework
):
    proxy.pages[f"{framework}.html"] = PAGE.replace(
        "BUNDLE", bundle(bundles, framework, SOURCES[framework])
    )
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket))
    log_in(page, server)
    page.goto(f"{proxy.url}/__test__/page/{framework}.html")
    page.wait_for_function("window.ready === true")
    execution_id = start_run(server)

    page.evaluate("(id) => mount(id)", execution_id)
    run = page.locator("#run")
    expect(page.locator("#output")).to_contain_text("Hello, ")  # streamed, before the node ends
    expect(run).to_have_attribute("data-transport", "websocket")

    # Hidden: the connection closes, and the events recorded meanwhile come on showing.
    page.evaluate("setHidden(true)")
    expect(run).to_have_attribute("data-state", "paused")
    (first,) = [s for s in sockets if "/ws/executions/" in s.url]  # the run's
    if not first.is_closed():
        first.wait_for_event("close")
    shown_before = page.locator("#logs li").count()
    page.wait_for_function(  # the run moves on while nobody looks
        f"""async () => {{
            const r = await fetch("/api/v1/executions/{execution_id}/events?after=0&limit=1000");
            const {{ results }} = await r.json();
            return results.some((e) => e.type === "chunk" && e.data === "world\\n");
        }}"""
    )
    page.evaluate("setHidden(false)")

    expect(run).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(run).to_have_attribute("data-state", "ended")
    stored = stored_events(server, execution_id)
    log_seqs = [e["seq"] for e in stored if e["type"] == "log"]
    assert [
        int(s)
        for s in page.locator("#logs li").evaluate_all("items => items.map((li) => li.dataset.seq)")
    ] == log_seqs  # each once, the ones after the pause too
    assert shown_before < len(log_seqs)
    assert page.text_content("#output") == "".join(PIECES)
    assert page.locator("#nodes li").evaluate_all(
        "items => items.map((li) => [li.dataset.node, li.dataset.status])"
    ) == [
        ["hello", "completed"],
        ["write", "completed"],
        ["wait", "completed"],
        ["bye", "completed"],
    ]
    feed_row = page.locator(f'#feed li[data-id="{execution_id}"]')
    expect(feed_row).to_have_attribute("data-status", "completed")

    # The run's own socket closed after its end; unmounting closes the feed's.
    page.evaluate("unmount()")
    page.wait_for_function("document.querySelector('#run') === null")
    ours = [s for s in sockets if s.url.startswith(f"ws://127.0.0.1:{proxy.port}/")]
    assert len(ours) == 3  # the run's, again after the pause, and the feed's
    for socket in ours:
        if not socket.is_closed():
            socket.wait_for_event("close")
