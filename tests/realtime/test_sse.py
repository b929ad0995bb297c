"""The composite position of a stream of many executions (``Last-Event-ID``)."""

import pytest
from django.core.checks import run_checks

from realtime.sse import BadRequest, StreamPositions, many_execution_ids

A, B = "a0000000-0000-0000-0000-000000000000", "b0000000-0000-0000-0000-000000000000"


def test_each_part_advances_and_the_id_names_them_all():
    positions = StreamPositions.parse([A, B], None, None)
    assert positions.advance({"type": "node", "execution_id": B, "seq": 7}) == ",7;"
    assert positions.advance({"type": "error", "execution_id": A, "message": "x"}) is None
    assert positions.advance({"type": "execution", "feed": "executions", "cursor": "c:9"}) == (
        ",7;c:9"
    )
    assert positions.advance({"type": "status", "execution_id": A, "seq": 3}) == "3,7;c:9"


def test_a_last_event_id_resumes_each_part_and_a_cursor_may_hold_anything():
    positions = StreamPositions.parse([A, B], "3,;sqlite:1;2", None)
    assert positions.seqs == {A: 3, B: None}
    assert positions.cursor == "sqlite:1;2"
    assert StreamPositions.parse([], ";c:1", None).cursor == "c:1"
    assert StreamPositions.parse([A], None, "c:5").text() == ";c:5"


@pytest.mark.parametrize("text", ["3", "3;c", "3,4,5;", "x,4;", "-1,2;", "1" * 19 + ",2;"])
def test_a_last_event_id_of_another_stream_is_refused(text):
    with pytest.raises(BadRequest, match="Last-Event-ID"):
        StreamPositions.parse([A, B], text, None)


def test_the_executions_are_taken_once_each_in_order_up_to_a_sockets_worth(settings):
    settings.REALTIME_MAX_SUBSCRIPTIONS = 2
    assert many_execution_ids(f" {B},{A},,{B} ") == [B, A]
    with pytest.raises(BadRequest, match="at most 2"):
        many_execution_ids(f"{A},{B},c")


def test_a_heartbeat_that_cannot_keep_a_stream_open_is_a_system_check_error(settings):
    settings.REALTIME_SSE_HEARTBEAT = settings.REALTIME_IDLE_TIMEOUT
    assert "realtime.E140" in [error.id for error in run_checks()]
    settings.REALTIME_SSE_HEARTBEAT = 15
    assert "realtime.E140" not in [error.id for error in run_checks()]
