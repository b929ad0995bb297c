"""Server-sent events and long polling on the real server: each one alone, and the
fallback from WebSocket to one and then the other, when a transport cannot be opened
or goes silent, resuming where it switched."""

import pytest

from tests.clients.conftest import start
from tests.clients.following import follow_all, stored
from tests.clients.proxy import Proxy
from tests.clients.transports import assert_refusals, assert_resumes_a_finished_execution

pytestmark = pytest.mark.embedded

KINDS = ["sync", "async"]
FALLBACKS = ["sse", "longpoll"]


@pytest.mark.parametrize("transport", FALLBACKS)
def test_an_execution_that_is_not_there_is_refused_for_good(live, transport):
    assert_refusals(live, transport)


@pytest.mark.parametrize("transport", FALLBACKS)
def test_resuming_a_finished_execution_gives_what_came_after_then_ends(live, steps, transport):
    assert_resumes_a_finished_execution(live, steps, transport)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transport", FALLBACKS)
def test_follows_a_live_run_alone(live, steps, kind, transport):
    execution_id = start(live, steps)

    followed = follow_all(kind, live.url, live.token, execution_id, transports=(transport,))

    if transport == "sse":
        assert_whole(followed, live, execution_id)
    else:  # no snapshot: from the first event
        assert followed.events == stored(live, execution_id)
    assert followed.transports_live() == [transport]
    assert followed.stream.reconnects == 0


def assert_whole(followed, live, execution_id: str) -> None:
    """Every event after the snapshot, once each and in order, to the terminal one."""
    snapshot, *later = followed.events
    assert snapshot["type"] == "status"
    assert later == [e for e in stored(live, execution_id) if e["seq"] > snapshot["seq"]]
    assert followed.events[-1]["status"] == "completed"


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_upgrade_falls_back_to_server_sent_events(live, steps, kind):
    execution_id = start(live, steps)

    with Proxy(live.process.port, refuse_websocket=True) as proxy:
        followed = follow_all(kind, proxy.url, live.token, execution_id)

    assert_whole(followed, live, execution_id)
    assert proxy.websocket_requests() == [f"/api/v1/ws/executions/{execution_id}"]
    assert followed.transports_live() == ["sse"]
    streams = [url for url in followed.requests if "/stream" in url]
    assert streams == [f"{proxy.url}/api/v1/executions/{execution_id}/stream"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_socket_gone_silent_gives_way_to_an_event_stream_from_its_last_event(live, steps, kind):
    execution_id = start(live, steps)

    # Three events pass, then nothing either way (no pong either): a stuck proxy.
    with Proxy(live.process.port, silent_after=3) as proxy:
        followed = follow_all(
            kind, proxy.url, live.token, execution_id, ping_interval=0.3, pong_timeout=0.5
        )

    assert_whole(followed, live, execution_id)
    third = followed.events[2]["seq"]
    streams = [url for url in followed.requests if "/stream" in url]
    assert streams == [f"{proxy.url}/api/v1/executions/{execution_id}/stream?last_seq={third}"]
    assert followed.transports_live() == ["websocket", "sse"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_stream_that_stays_silent_gives_way_to_long_polls(live, steps, kind):
    execution_id = start(live, steps)

    with Proxy(live.process.port, refuse_websocket=True, silent_paths=("/stream",)) as proxy:
        followed = follow_all(kind, proxy.url, live.token, execution_id, sse_silence=0.5)

    # A long poll has no snapshot: with no event yet, it starts from the first.
    assert followed.events == stored(live, execution_id)
    assert followed.transports_live() == ["longpoll"]
    polls = [url for url in followed.requests if "wait=" in url]
    assert polls[0] == (
        f"{proxy.url}/api/v1/executions/{execution_id}/events?after=0&limit=1000&wait=30"
    )
    assert len(polls) < len(followed.events), "a poll waits for news, and takes all there is"
