"""Following a live execution on the real server over WebSocket: in order, each event
once, resumed after dropped connections, gaps filled from the events endpoint."""

import json

import pytest

from tests.clients.conftest import start
from tests.clients.following import follow_all, stored
from tests.clients.proxy import Proxy
from tests.clients.transports import assert_refusals, assert_resumes_a_finished_execution
from tests.factories import chain, node

pytestmark = pytest.mark.embedded

KINDS = ["sync", "async"]
# Waits long enough to be cancelled while it waits; not so long that a broken client
# (one that only catches up at the end) makes the test slow.
LONG = chain(
    node("greet", "log", message="hello", level="info"),
    node("wait", "delay", seconds=5),
    node("after", "log", message="never", level="info"),
)


@pytest.mark.parametrize("kind", KINDS)
def test_follows_a_live_run_from_its_snapshot_to_its_end(live, steps, kind):
    execution_id = start(live, steps)

    followed = follow_all(kind, live.url, live.token, execution_id)

    snapshot, *later = followed.events
    assert snapshot["type"] == "status" and snapshot["status"] in {"pending", "running"}
    assert later == [e for e in stored(live, execution_id) if e["seq"] > snapshot["seq"]]
    last = followed.events[-1]
    assert (last["type"], last["status"], last["result"]) == ("status", "completed", {"echo": "hi"})
    assert followed.stream.last_seq == last["seq"] and followed.stream.ended
    assert [state for state, _ in followed.states] == ["connecting", "live", "ended"]
    assert followed.transports_live() == ["websocket"]


@pytest.mark.parametrize("kind", KINDS)
def test_resumes_after_dropped_connections_with_each_event_once(live, steps, kind):
    execution_id = start(live, steps)

    # The first socket is cut after 3 events, the second after 4: no close frame.
    with Proxy(live.process.port, cuts=[3, 4]) as proxy:
        followed = follow_all(kind, proxy.url, live.token, execution_id)

    seqs = [e["seq"] for e in followed.events]
    assert followed.events[1:] == [e for e in stored(live, execution_id) if e["seq"] > seqs[0]]
    assert followed.events[-1]["status"] == "completed"
    path = f"/api/v1/ws/executions/{execution_id}"
    assert proxy.websocket_requests() == [
        path,
        f"{path}?last_seq={seqs[2]}",
        f"{path}?last_seq={seqs[6]}",
    ]
    assert followed.stream.reconnects == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_gap_is_filled_from_the_events_endpoint_and_late_events_are_dropped(live, kind):
    status, workflow = live.request(
        "POST", "/api/v1/workflows", {"name": f"gap {kind}", "definition": LONG}
    )
    assert status == 201, workflow
    execution_id = start(live, workflow)

    def cancel_once_waiting(event: dict) -> None:
        if (event["type"], event.get("node_id"), event.get("status")) == (
            "node",
            "wait",
            "running",
        ):
            assert live.request("POST", f"/api/v1/executions/{execution_id}/cancel")[0] == 202

    # Events 3 and 4 reach the client after 5: 5 comes after a gap, 3 and 4 twice.
    with Proxy(live.process.port, late_seqs={3, 4}) as proxy:
        followed = follow_all(
            kind, proxy.url, live.token, execution_id, last_seq=0, on_event=cancel_once_waiting
        )

    # The gap was filled while the execution still ran: it was cancelled in its wait.
    assert followed.events == stored(live, execution_id)
    assert followed.events[-1]["status"] == "cancelled"
    fills = [url for url in followed.requests if "/events?" in url]
    assert fills == [f"{proxy.url}/api/v1/executions/{execution_id}/events?after=2&limit=1000"]
    assert followed.stream.reconnects == 0


def test_an_execution_that_is_not_there_is_refused_for_good(live):
    assert_refusals(live, "websocket")


def test_resuming_a_finished_execution_gives_what_came_after_then_ends(live, steps):
    assert_resumes_a_finished_execution(live, steps, "websocket")


@pytest.mark.parametrize("kind", KINDS)
def test_a_cut_result_is_delivered_whole_unless_asked_not_to(live, kind):
    definition = {"nodes": [node("a", "delay", seconds=0), node("b", "delay", seconds=0)]}
    status, workflow = live.request(
        "POST", "/api/v1/workflows", {"name": f"twice {kind}", "definition": definition}
    )
    assert status == 201, workflow
    text = "x" * 40_000  # the result: over 64 KiB of JSON (EXECUTIONS_EVENT_RESULT_LIMIT)
    execution_id = start(live, workflow, {"text": text})

    whole = follow_all(kind, live.url, live.token, execution_id, last_seq=0)
    cut = follow_all(kind, live.url, live.token, execution_id, last_seq=0, whole_results=False)

    assert whole.events[-1]["result"] == {"a": {"text": text}, "b": {"text": text}}
    assert "result_truncated" not in whole.events[-1]
    assert cut.events[-1]["result_truncated"] is True
    assert cut.events[-1] == stored(live, execution_id)[-1]
    assert len(json.dumps(cut.events[-1]["result"])) < 70_000
