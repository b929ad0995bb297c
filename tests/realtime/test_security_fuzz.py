"""Property-based fuzzing of inbound frames: every frame gets an answer, nothing crashes,
and the execution's other subscribers keep receiving every event."""

import json

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executions import services
from tests.realtime.helpers import (
    bearer,
    expected,
    open_socket,
    parsed,
    path_for,
    receive,
    receive_close,
    record,
    stored_events,
)

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 64 * 1024

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
wrong_types = st.fixed_dictionaries(
    {"type": json_values | st.sampled_from(["ping", "PING", "pong", "subscribe", ""])},
    optional={"last_seq": json_values, "ticket": json_values},
)


def nested(depth: int, opener: str, leaf: str, closer: str) -> str:
    return opener * depth + leaf + closer * depth


text_frames = st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),
    wrong_types.map(json.dumps),
    st.integers(1, 30000).map(lambda n: nested(n, "[", "", "]")),
    st.integers(1, 8000).map(lambda n: nested(n, '{"type":', '"ping"', "}")),
    st.integers(LIMIT - 40, LIMIT + 40).map(lambda n: json.dumps({"type": "ping", "pad": "x" * n})),
    st.integers(LIMIT // 2, LIMIT).map(lambda n: "[" + "1," * n + "1]"),
)
frames = st.one_of(
    text_frames.map(lambda text: ("text", text)),
    st.binary(max_size=300).map(lambda data: ("bytes", data)),
)


def expected_answer(kind: str, payload) -> str:
    """What the server must answer: "pong", "error", or "close" (too big: error, then 1009)."""
    size = len(payload) if kind == "bytes" else len(payload.encode("utf-8", "surrogatepass"))
    if size > django_settings.REALTIME_MAX_MESSAGE_BYTES:
        return "close"
    if kind == "bytes":
        return "error"
    try:
        content = json.loads(payload)
    except (ValueError, RecursionError):
        return "error"
    return "pong" if isinstance(content, dict) and content.get("type") == "ping" else "error"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sent=st.lists(frames, min_size=1, max_size=6))
async def test_every_frame_gets_an_answer_and_other_subscribers_get_every_event(
    held_execution, token, sent
):
    path = path_for(held_execution.id)
    async with (
        open_socket(path, bearer(token)) as watcher,
        open_socket(path, bearer(token)) as fuzzer,
    ):
        await receive(watcher)  # the snapshots
        await receive(fuzzer)
        fuzzer_open = True
        for kind, payload in sent:
            # send_input, not send_to: empty frames are fair game too.
            await fuzzer.send_input({"type": "websocket.receive", kind: payload})
            answer = await receive(fuzzer)
            want = expected_answer(kind, payload)
            if want == "pong":
                assert answer == {"type": "pong"}
                continue
            assert answer["type"] == "error" and answer["message"].strip(), answer
            assert set(answer) == {"type", "message"}
            if want == "close":
                assert await receive_close(fuzzer) == 1009
                fuzzer_open = False
                break

        await record(
            services.execution_log,
            execution_id=held_execution.id,
            node_id=None,
            level="info",
            message="after the fuzz",
        )
        newest = (await stored_events(held_execution.id))[-1]
        assert parsed(await receive(watcher)) == expected(newest)
        if fuzzer_open:
            assert parsed(await receive(fuzzer)) == expected(newest)
