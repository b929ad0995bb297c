"""Streamed node output: ``ctx.stream`` pieces coalesced into ``chunk`` events,
recorded in order before the node's end, kept within the execution's limit,
and read back in REST."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

import tests.executions.nodes  # registers the test node types (Streamer is used below)
from executions.engine import recorder
from executions.engine.streams import NodeStreams, text_parts
from tests.executions.engine_helpers import create, reload, run, stored
from tests.executions.http_servers import Script, serving
from tests.factories import chain, node

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]


def chunks(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "chunk"]


def streamer(node_id: str = "s", **params) -> dict:
    return node(node_id, "test_streamer", **params)


async def test_pieces_within_the_interval_are_one_chunk_before_the_node_completes(settings):
    settings.EXECUTIONS_CHUNK_INTERVAL = 5  # longer than the node runs
    execution, events = await run(chain(streamer(pieces=["Hel", "lo", ", wor", "ld"])))

    assert execution.status == "completed"
    (chunk,) = chunks(events)
    assert (chunk["node_id"], chunk["stream"], chunk["attempt"]) == ("s", "output", 1)
    assert chunk["data"] == "Hello, world"
    completed = next(e for e in events if e["type"] == "node" and e["status"] == "completed")
    assert chunk["seq"] < completed["seq"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_json_pieces_make_a_list_and_streams_are_apart(settings):
    settings.EXECUTIONS_CHUNK_INTERVAL = 5
    definition = chain(
        streamer("a", pieces=[{"token": 1}, [2], "three"], json=True, stream="tokens"),
        streamer("b", pieces=["x", "y"], stream="notes"),
    )
    execution, events = await run(definition)

    assert [(c["node_id"], c["stream"], c["data"]) for c in chunks(events)] == [
        ("a", "tokens", [{"token": 1}, [2], "three"]),
        ("b", "notes", "xy"),
    ]
    detail = await database_sync_to_async(detail_of)(execution)
    streams = {n["node_id"]: (n["streams"], n["streams_truncated"]) for n in detail["nodes"]}
    assert streams == {
        "a": ({"tokens": [{"token": 1}, [2], "three"]}, False),
        "b": ({"notes": "xy"}, False),
    }


def detail_of(execution) -> dict:
    client = APIClient()
    client.force_authenticate(execution.owner)
    response = client.get(f"/api/v1/executions/{execution.id}")
    assert response.status_code == 200, response.content
    return response.json()


async def test_no_piece_waits_longer_than_the_interval():
    """Each chunk goes out one interval after its first piece, with every piece since."""
    emitted: list[tuple[float, dict]] = []
    loop = asyncio.get_running_loop()
    interval = 0.05
    with override(EXECUTIONS_CHUNK_INTERVAL=interval):
        streams = NodeStreams(
            node_id="n", attempt=1, emit=lambda data: emitted.append((loop.time(), data))
        )
        written: list[tuple[float, str]] = []
        for index in range(12):
            written.append((loop.time(), str(index)))
            streams.add("output", str(index), is_json=False)
            await asyncio.sleep(0.013)
        await asyncio.sleep(interval * 2)
    assert "".join(data["data"] for _, data in emitted) == "".join(t for _, t in written)
    assert 2 <= len(emitted) <= 6, "coalesced, and not held to the end"
    for piece_time, text in written:
        sent = next(t for t, data in emitted if text in data["data"])
        # Loop timers fire late by a little; never by a whole interval.
        assert sent - piece_time <= interval * 1.5


def override(**values):
    from django.test import override_settings

    return override_settings(**values)


async def test_a_chunk_is_sent_early_at_its_size_and_long_text_is_cut_between_characters():
    emitted: list[dict] = []
    with override(EXECUTIONS_CHUNK_INTERVAL=60, EXECUTIONS_CHUNK_MAX_BYTES=1024):
        streams = NodeStreams(node_id="n", attempt=1, emit=emitted.append)
        streams.add("output", "é" * 1500, is_json=False)  # 3,000 bytes
        assert [len(d["data"].encode()) for d in emitted] == [1024, 1024]
        streams.close()
    assert "".join(d["data"] for d in emitted) == "é" * 1500
    assert all(len(d["data"].encode()) <= 1024 for d in emitted)
    assert text_parts("a€" * 3, 4) == ["a€", "a€", "a€"]


async def test_bad_pieces_and_names_fail_the_node_with_what_to_do(settings):
    settings.EXECUTIONS_MAX_STREAMS_PER_NODE = 2
    cases = {
        "bad name": (streamer(pieces=["x"], stream="no spaces"), "is not valid"),
        "mixed": (streamer(pieces=["x", 1]), "takes text, not int"),
    }
    for expected_case, (definition_node, expected) in cases.items():
        execution, _ = await run(chain(definition_node))
        assert execution.status == "failed", expected_case
        assert expected in execution.error, (expected_case, execution.error)

    streams = NodeStreams(node_id="n", attempt=1, emit=lambda data: None)
    streams.add("a", "x", is_json=False)
    with pytest.raises(ValueError, match=r"is a text stream: write to it with ctx\.stream\."):
        streams.add("a", {"x": 1}, is_json=True)
    streams.add("b", [1], is_json=True)
    with pytest.raises(ValueError, match=r"is a JSON stream: write to it with ctx\.stream_json"):
        streams.add("b", "y", is_json=False)
    with pytest.raises(ValueError, match="EXECUTIONS_MAX_STREAMS_PER_NODE"):
        streams.add("c", "z", is_json=False)
    with pytest.raises(ValueError, match="takes a JSON value"):
        streams.add("b", float("nan"), is_json=True)
    with pytest.raises(TypeError, match=r"use ctx\.stream_json"):
        streams.add("a", 5, is_json=False)
    streams.close()
    with pytest.raises(RuntimeError, match="has finished"):
        streams.add("a", "late", is_json=False)


async def test_a_node_that_streams_then_fails_keeps_what_it_streamed(settings):
    settings.EXECUTIONS_CHUNK_INTERVAL = 5
    execution, events = await run(chain(streamer(pieces=["one ", "two ", "three"], fail_after=2)))

    assert execution.status == "failed"
    (chunk,) = chunks(events)
    assert chunk["data"] == "one two "
    failed = next(e for e in events if e["type"] == "node" and e["status"] == "failed")
    assert chunk["seq"] < failed["seq"]
    detail = await database_sync_to_async(detail_of)(execution)
    (node_detail,) = detail["nodes"]
    assert node_detail["status"] == "failed"
    assert node_detail["streams"] == {"output": "one two "}
    assert "broke after 2 pieces" in node_detail["error"]


async def test_a_retry_streams_again_and_rest_shows_the_current_attempt(settings):
    settings.EXECUTIONS_CHUNK_INTERVAL = 5
    definition = {
        "nodes": [
            {
                **streamer(pieces=["first try"]),
                "retries": 1,
                "retry_backoff_seconds": 0,
            },
        ],
        "edges": [],
    }
    # The streamer fails on no attempt; make its first attempt fail after streaming.
    attempts = []
    original = tests.executions.nodes.Streamer.run

    async def flaky(self, ctx, params, data):
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await ctx.stream("lost ")
            raise tests.executions.nodes.NodeFailed("first attempt fails")
        return await original(self, ctx, params, data)

    tests.executions.nodes.Streamer.run = flaky
    try:
        execution, events = await run(definition)
    finally:
        tests.executions.nodes.Streamer.run = original

    assert execution.status == "completed"
    assert [(c["attempt"], c["data"]) for c in chunks(events)] == [(1, "lost "), (2, "first try")]
    detail = await database_sync_to_async(detail_of)(execution)
    assert detail["nodes"][0]["streams"] == {"output": "first try"}


async def test_streams_past_the_execution_limit_are_cut_with_a_marker(settings):
    settings.EXECUTIONS_CHUNK_INTERVAL = 0
    settings.EXECUTIONS_MAX_STREAM_BYTES = 10
    execution, events = await run(
        chain(streamer(pieces=["abcdef", "ghijkl", "mnop"], interval=0.05))
    )

    assert execution.status == "completed"
    recorded = chunks(events)
    assert [c["data"] for c in recorded] == ["abcdef", "ghij"]
    assert recorded[-1]["stream_truncated"] is True
    assert "stream_truncated" not in recorded[0]
    detail = await database_sync_to_async(detail_of)(execution)
    assert detail["nodes"][0]["streams"] == {"output": "abcdefghij"}
    assert detail["nodes"][0]["streams_truncated"] is True
    assert events[-1]["type"] == "status" and events[-1]["status"] == "completed"


async def test_events_replay_chunks_from_any_seq(settings):
    settings.EXECUTIONS_CHUNK_INTERVAL = 0
    execution, events = await run(chain(streamer(pieces=["a", "b", "c"], interval=0.02)))
    first_chunk = chunks(events)[0]["seq"]

    def replay(query: str) -> list[dict]:
        client = APIClient()
        client.force_authenticate(execution.owner)
        response = client.get(f"/api/v1/executions/{execution.id}/events?{query}")
        assert response.status_code == 200, response.content
        body = response.json()
        return body["results"] if isinstance(body, dict) else body

    replayed = await database_sync_to_async(replay)(f"after={first_chunk}")
    assert [m["seq"] for m in replayed] == list(range(first_chunk + 1, len(events) + 1))
    later = [m for m in replayed if m["type"] == "chunk"]
    assert [m["data"] for m in later] == [c["data"] for c in chunks(events)[1:]]
    assert all(
        set(m) >= {"execution_id", "node_id", "stream", "data", "seq", "timestamp"} for m in later
    )


async def test_many_executions_logging_at_once_are_recorded_in_shared_batches(
    monkeypatch, settings
):
    # One lane: every execution's records go through the same batches.
    settings.EXECUTIONS_RECORD_WRITERS = 1
    sizes: list[int] = []
    events_record = recorder.events_record

    def counted(*, records):
        sizes.append(len({r.execution_id for r in records}))
        return events_record(records=records)

    monkeypatch.setattr(recorder, "events_record", counted)
    from executions.engine.runner import run_execution

    executions = [await create(chain(node("c", "test_chatter", lines=20))) for _ in range(6)]
    await asyncio.gather(*(run_execution(e.id) for e in executions))

    assert max(sizes) > 1, "records of several executions shared a transaction"
    for execution in executions:
        events = await stored(execution.id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        lines = [e["message"] for e in events if e["type"] == "log" and e["node_id"] == "c"]
        assert lines == [f"c line {i}" for i in range(1, 21)]
        assert (await reload(execution)).status == "completed"


async def test_a_batch_that_fails_is_written_again_one_execution_at_a_time(monkeypatch):
    bad = await create(chain(node("c", "test_chatter", lines=3)))
    good = await create(chain(node("c", "test_chatter", lines=3)))
    events_record = recorder.events_record

    def refusing(*, records):
        if any(r.execution_id == bad.id for r in records):
            raise RuntimeError("refused")
        return events_record(records=records)

    monkeypatch.setattr(recorder, "events_record", refusing)
    from executions.engine.runner import run_execution

    await asyncio.gather(run_execution(bad.id), run_execution(good.id))

    assert (await reload(good)).status == "completed"
    lines = [e for e in await stored(good.id) if e["type"] == "log" and e["node_id"] == "c"]
    assert len(lines) == 3
    failed = await reload(bad)
    assert failed.status == "failed"
    assert "could not be recorded" in failed.error


async def test_http_request_streams_server_sent_events_into_chunks(settings):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.EXECUTIONS_CHUNK_INTERVAL = 5
    with serving() as server:
        server.scripts["/sse"] = Script(
            "text/event-stream", [b"data: Hello\n\n", b"data: , world\n\n"]
        )
        execution, events = await run(
            chain(node("h", "http_request", url=f"{server.url()}/sse", stream=True))
        )
    assert execution.status == "completed", execution.error
    assert "".join(c["data"] for c in chunks(events)) == "Hello, world"
    assert execution.result["text"] == "Hello, world"


@pytest.mark.parametrize(
    ("name", "value", "errors"),
    [
        ("EXECUTIONS_CHUNK_MAX_BYTES", 3, 1),
        ("EXECUTIONS_CHUNK_MAX_BYTES", 4, 0),
        ("EXECUTIONS_CHUNK_INTERVAL", -0.1, 1),
        ("EXECUTIONS_RECORD_BATCH", 0, 1),
        ("EXECUTIONS_MAX_STREAMS_PER_NODE", 0, 1),
    ],
)
def test_stream_settings_that_cannot_work_are_system_check_errors(settings, name, value, errors):
    from django.core import checks

    setattr(settings, name, value)
    found = [e for e in checks.run_checks() if e.id == "executions.E130"]
    assert len(found) == errors
    assert all(name in e.msg for e in found)
