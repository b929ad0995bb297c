"""What a follow decides, without a server: the order of events, the transport to
try next and when, what each answer means, and the event stream's format."""

import socket

import pytest
from workflow_push import Client, FollowOptions, StreamLost
from workflow_push._rest import next_url
from workflow_push._sse import EventStreamParser
from workflow_push._stream import (
    Lost,
    Plan,
    Refused,
    Sequence,
    Unavailable,
    closed,
    sse_message,
    stream_open_failure,
    websocket_url,
)


def event(seq: int, kind: str = "log", **fields) -> dict:
    return {"type": kind, "seq": seq, **fields}


def test_the_first_message_without_last_seq_is_the_snapshot_then_each_seq_once_in_order():
    events = Sequence(None)

    assert events.is_next(event(7, "status", status="running"))
    events.delivered(event(7, "status", status="running"))
    assert not events.is_next(event(7)) and not events.is_next(event(5)), "seen already"
    assert events.gap_before(event(8)) is None and events.is_next(event(8))
    assert events.gap_before(event(11)) == 10 and not events.is_next(event(11))

    events.delivered(event(8, "status", status="completed"))
    assert events.ended
    assert not events.is_next(event(9)) and events.gap_before(event(12)) is None


def test_a_resumed_sequence_expects_the_event_after_last_seq():
    events = Sequence(4)
    assert events.gap_before(event(5)) is None and events.is_next(event(5))
    assert events.gap_before(event(9)) == 8
    assert not events.is_next(event(4))


def plan(**options) -> Plan:
    return Plan(FollowOptions(**options), rng=lambda: 1.0)


def test_a_transport_that_cannot_open_gives_way_to_the_next_at_once_then_the_first_again():
    chosen = plan(backoff_initial=0.5, backoff_factor=2, backoff_max=3, retries=None)
    assert chosen.transport == "websocket"
    assert chosen.after_unavailable("refused") == 0 and chosen.transport == "sse"
    assert chosen.after_unavailable("refused") == 0 and chosen.transport == "longpoll"
    # The last could not open either: the first again, after the backoff delay.
    assert chosen.after_unavailable("refused") == 0.5 and chosen.transport == "websocket"
    assert [chosen.delay() for _ in range(4)] == [1, 2, 3, 3], "doubled, capped"
    chosen.proven()
    assert chosen.delay() == 0.5, "an event arrived: the shortest delay again"


def test_the_delay_is_between_half_and_all_of_its_step():
    low, high = Plan(FollowOptions(), rng=lambda: 0.0), Plan(FollowOptions(), rng=lambda: 1.0)
    assert [low.delay() for _ in range(3)] == [0.25, 0.5, 1.0]
    assert [high.delay() for _ in range(3)] == [0.5, 1.0, 2.0]


def test_it_gives_up_after_so_many_rounds_in_which_nothing_opened():
    chosen = plan(transports=("websocket", "longpoll"), retries=2)
    for _ in range(2):
        chosen.after_unavailable("x")
        chosen.after_unavailable("x")
    chosen.after_unavailable("x")
    with pytest.raises(StreamLost) as lost:
        chosen.after_unavailable("connection refused")
    assert (lost.value.attempts, lost.value.reason) == (3, "connection refused")

    chosen = plan(transports=("longpoll",), retries=1)
    chosen.after_unavailable("x")
    chosen.opened()  # a transport opened: the count starts again
    chosen.after_unavailable("x")


def test_a_server_that_cannot_be_reached_ends_the_follow_with_stream_lost():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    options = FollowOptions(retries=1, backoff_initial=0.01, open_timeout=1)
    with Client(f"http://127.0.0.1:{port}", "t", follow_options=options) as client:
        stream = client.follow("0b6f1c1e-7a49-4c1f-9d84-2f1f0c6d7a10")
        with pytest.raises(StreamLost) as lost:
            list(stream)
    assert lost.value.attempts == 2
    assert "ConnectError" in lost.value.reason  # the long poll's, the last one tried


def test_what_a_close_code_means():
    assert closed(1000, "") is None
    for code in (4400, 4401, 4403, 4404):
        assert isinstance(closed(code, "why"), Refused) and closed(code, "why").code == code
    for code in (1006, 1011, 1013, 4408, 4410, 4429):
        assert isinstance(closed(code, ""), Lost)


def test_what_an_event_stream_refusal_means():
    refused = stream_open_failure(404, {"detail": "No such execution.", "code": 4404})
    assert (type(refused), refused.code, refused.reason) == (Refused, 4404, "No such execution.")
    assert type(stream_open_failure(429, {"detail": "Too many", "code": 4429})) is Lost
    assert type(stream_open_failure(503, {"detail": "Try later", "code": 1013})) is Lost
    # No close code: not the server's stream (a proxy's page, a server without it).
    assert type(stream_open_failure(404, "<html>Not Found</html>")) is Unavailable
    assert type(stream_open_failure(502, None)) is Unavailable


def lines(text: str) -> list[str]:
    return text.split("\n")


def test_the_event_stream_parser_reads_events_comments_and_ids():
    parser = EventStreamParser()
    body = (
        ": ping\n\n"
        'id: 7\nevent: status\ndata: {"type": "status", "seq": 7}\n\n'
        'event: pong\ndata: {"type": "pong"}\n\n'
        "data:first\ndata: second\n\n"
        "retry: 100\nid\n\n"
    )
    found = [e for e in map(parser.feed, lines(body)) if e is not None]

    assert [(e.event, e.data, e.id) for e in found] == [
        ("status", '{"type": "status", "seq": 7}', "7"),
        ("pong", '{"type": "pong"}', "7"),  # the last id stays until another
        ("message", "first\nsecond", "7"),
    ]
    assert parser.last_id == ""


def test_an_error_event_is_a_cut_to_resume_from_unless_it_names_a_refusal():
    parser = EventStreamParser()
    cut = [
        parser.feed(line)
        for line in lines('event: error\ndata: {"type": "error", "message": "slow"}\n')
    ]
    with pytest.raises(Lost, match="slow"):
        sse_message(cut[-1])
    refusal = [
        parser.feed(line) for line in lines('event: error\ndata: {"code": 4403, "message": "no"}\n')
    ]
    with pytest.raises(Refused):
        sse_message(refusal[-1])


def test_urls():
    assert (
        websocket_url("https://h.example/base/", "e1", None)
        == "wss://h.example/base/api/v1/ws/executions/e1"
    )
    assert (
        websocket_url("http://h:8037", "e1", 0) == "ws://h:8037/api/v1/ws/executions/e1?last_seq=0"
    )
    # A next page on the host the client talks to, whatever host the server saw.
    assert next_url("http://127.0.0.1:9/", "http://internal:8001/api/v1/x?page=2") == (
        "http://127.0.0.1:9/api/v1/x?page=2"
    )
    assert next_url("http://h", None) is None


def test_options_name_what_is_wrong():
    with pytest.raises(ValueError, match="transports must be one or more of"):
        FollowOptions(transports=("carrier-pigeon",))
    with pytest.raises(ValueError, match="poll_wait"):
        FollowOptions(poll_wait=60)
