"""docs/asyncapi.yaml describes exactly the messages the server sends and accepts.

Real executions are streamed through the real consumer; every message must
match its AsyncAPI message schema, and the schemas must be strict enough to
reject what the server does not send.
"""

from pathlib import Path

import jsonschema
import pytest
import yaml
from django.test import override_settings
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

import tests.executions.nodes  # noqa: F401  registers test_streamer
from tests.factories import chain, make_execution, make_workflow, node
from tests.realtime.helpers import (
    bearer,
    open_socket,
    path_for,
    receive,
    receive_refusal,
    receive_until_close,
    record,
)

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
BASE = "urn:asyncapi"

# Every kind of node event: completed with a truncated output, skipped, failed
# and retried, cancelled (running when its sibling failed); node and engine logs.
EVERYTHING = {
    "nodes": [
        node("start", "log", message="begin", level="warning"),
        node("loud", "log", message="a log line that will be truncated", level="info"),
        node("big", "transform", expression="{text: 'a long output that will be truncated'}"),
        node("gate", "condition", expression="`false`"),
        node("never", "log", message="skipped", level="info"),
        node("slow", "delay", seconds=30),
        {**node("boom", "fail", message="no"), "retries": 1, "retry_backoff_seconds": 0},
        node("oops", "fail", message="an error that will be truncated"),
        node("talk", "test_streamer", pieces=["a", "b"]),
        node("rows", "test_streamer", pieces=[{"id": 1}], json=True, stream="rows"),
    ],
    "edges": [
        {"source": "start", "target": "big"},
        {"source": "start", "target": "gate"},
        {"source": "gate", "target": "never"},
        {"source": "start", "target": "slow"},
        {"source": "big", "target": "boom"},
        {"source": "start", "target": "loud"},
        {"source": "start", "target": "talk"},
        {"source": "start", "target": "rows"},
        # The failures come after the streams have ended: the run stops at the first.
        {"source": "talk", "target": "oops"},
        {"source": "rows", "target": "oops"},
        {"source": "talk", "target": "boom"},
        {"source": "rows", "target": "boom"},
    ],
}


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(DOCUMENT_PATH.read_text())


@pytest.fixture(scope="module")
def validators(document) -> dict[str, jsonschema.Draft7Validator]:
    """A validator per message name, resolving ``$ref``s within the document."""
    registry = Registry().with_resource(BASE, Resource(document, DRAFT7))
    return {
        name: jsonschema.Draft7Validator(
            {"$ref": f"{BASE}#/components/messages/{name}/payload"}, registry=registry
        )
        for name in document["components"]["messages"]
    }


# The documented messages of each type, by their names in the document.
OF_TYPE = {"error": ("error", "subscriptionError")}


def check(validators, message: dict) -> None:
    names = OF_TYPE.get(message.get("type"), (message.get("type"),))
    assert all(name in validators for name in names), f"undocumented message type: {message}"
    if len(names) == 1:
        return validators[names[0]].validate(message)
    assert any(validators[name].is_valid(message) for name in names), message


def test_document_is_asyncapi_3_with_every_message_on_the_channel(document, validators):
    assert document["asyncapi"] == "3.0.0"
    channel = document["channels"]["execution"]
    assert channel["address"] == "/api/v1/ws/executions/{execution_id}"
    assert set(channel["messages"]) == {"status", "node", "log", "chunk", "pong", "error", "ping"}
    many = document["channels"]["executions"]
    assert many["address"] == "/api/v1/ws"
    assert set(many["messages"]) == {
        *("status", "node", "log", "chunk", "execution", "unsubscribed", "subscriptionError"),
        *("pong", "error", "ping", "subscribe", "unsubscribe"),
    }
    # Server-Sent Events: the same messages, but for the socket's ping and pong.
    single = document["channels"]["executionEventStream"]
    assert single["address"] == "/api/v1/executions/{execution_id}/stream"
    assert set(single["messages"]) == set(channel["messages"]) - {"ping", "pong"}
    streams = document["channels"]["eventStreams"]
    assert streams["address"] == "/api/v1/stream"
    assert set(streams["messages"]) == set(many["messages"]) - {
        "ping",
        "pong",
        "subscribe",
        "unsubscribe",
    }
    for key, message in document["components"]["messages"].items():
        for example in message.get("examples", []):
            validators[key].validate(example["payload"])


@pytest.mark.django_db(transaction=True)
@override_settings(
    EXECUTIONS_EVENT_OUTPUT_LIMIT=12,
    EXECUTIONS_EVENT_RESULT_LIMIT=4,
    EXECUTIONS_EVENT_TEXT_LIMIT=24,
    # "a", "b" and {"id": 1} fit; the completing run's long stream is cut.
    EXECUTIONS_MAX_STREAM_BYTES=12,
    EXECUTIONS_MAX_PARALLEL_NODES=20,
)
async def test_every_message_the_server_sends_matches_its_schema(user, token, validators):
    failing = await record(make_workflow, owner=user, definition=EVERYTHING)
    completing = await record(
        make_workflow,
        owner=user,
        definition={
            "nodes": [
                node("w", "delay", seconds=0),
                node("t", "transform", expression="x"),
                node("long", "test_streamer", pieces=["past the stream limit"]),
            ],
            "edges": [{"source": "w", "target": "t"}, {"source": "w", "target": "long"}],
        },
    )
    seen = []
    for workflow, input_data in ((failing, {}), (completing, {"x": [1, 2]})):
        execution = await record(
            make_execution, owner=user, workflow=workflow, input_data=input_data
        )
        async with open_socket(path_for(execution.id, "last_seq=0"), bearer(token)) as socket:
            messages, code = await receive_until_close(socket)
        assert code == 1000
        seen += messages
        async with open_socket(path_for(execution.id), bearer(token)) as socket:
            snapshot, code = await receive_until_close(socket)
        seen += snapshot
    async with open_socket(path_for(execution.id, "last_seq=x"), bearer(token)) as socket:
        refusal, code = await receive_refusal(socket)
        seen.append({"type": "error", "message": refusal})
    waiting = await record(
        make_workflow, owner=user, definition=chain(node("w", "delay", seconds=30))
    )
    execution = await record(make_execution, owner=user, workflow=waiting)
    async with open_socket(path_for(execution.id), bearer(token)) as socket:
        seen.append(await receive(socket))  # the snapshot
        for frame in ({"type": "ping"}, {"type": "subscribe"}):
            await socket.send_json_to(frame)
            # The execution's own events (it starts meanwhile) may come first.
            while True:
                seen.append(await receive(socket))
                if "seq" not in seen[-1]:
                    break

    for message in seen:
        check(validators, message)
    assert {m["type"] for m in seen} == {"status", "node", "log", "chunk", "pong", "error"}
    streamed = {(m["node_id"], type(m["data"]).__name__) for m in seen if m["type"] == "chunk"}
    assert streamed == {("talk", "str"), ("rows", "list"), ("long", "str")}
    assert any(m.get("stream_truncated") for m in seen if m["type"] == "chunk")
    node_states = {m["status"] for m in seen if m["type"] == "node"}
    assert node_states == {"running", "completed", "failed", "skipped", "cancelled"}
    assert any(m.get("output_truncated") for m in seen)
    assert any(m.get("result_truncated") for m in seen)
    for kind, field in (("log", "message"), ("node", "error"), ("status", "error")):
        assert any(m.get(f"{field}_truncated") for m in seen if m["type"] == kind), kind
    assert any(m.get("message_truncated") for m in seen if m["type"] == "status")
    assert {m["node_id"] is None for m in seen if m["type"] == "log"} == {True, False}
    assert {m["status"] for m in seen if m["type"] == "status"} >= {"failed", "completed"}


VALID_STATUS = {
    "type": "status",
    "execution_id": "0b6f1c1e-7a49-4c1f-9d84-2f1f0c6d7a10",
    "status": "running",
    "progress": 40,
    "message": "Running",
    "result": None,
    "error": None,
    "execution_time": None,
    "seq": 7,
    "timestamp": "2026-11-28T10:00:01.123456Z",
}
VALID_NODE = {
    "type": "node",
    "execution_id": "0b6f1c1e-7a49-4c1f-9d84-2f1f0c6d7a10",
    "node_id": "n",
    "node_type": "delay",
    "status": "completed",
    "attempt": 1,
    "output": {},
    "duration": 0.1,
    "seq": 3,
    "timestamp": "2026-11-28T10:00:01.123456Z",
}
VALID_CHUNK = {
    "type": "chunk",
    "execution_id": "0b6f1c1e-7a49-4c1f-9d84-2f1f0c6d7a10",
    "node_id": "n",
    "stream": "output",
    "attempt": 1,
    "data": "text",
    "seq": 4,
    "timestamp": "2026-11-28T10:00:01.123456Z",
}


@pytest.mark.parametrize(
    "message",
    [
        {k: v for k, v in VALID_STATUS.items() if k != "seq"},
        {**VALID_STATUS, "progress": 101},
        {**VALID_STATUS, "status": "paused"},
        {**VALID_STATUS, "timestamp": "2026-11-28T10:00:01Z"},
        {**VALID_STATUS, "extra": 1},
        {**VALID_STATUS, "result_truncated": True},  # without result_size
        {**VALID_STATUS, "result_truncated": False, "result_size": 3},
        {**VALID_NODE, "status": "running"},  # output on a running node
        {k: v for k, v in VALID_NODE.items() if k != "output"},  # completed without output
        {**VALID_NODE, "status": "failed", "output": None},
        {**VALID_NODE, "output_truncated": True},  # without output_size
        {"type": "log", "node_id": None, "level": "trace", "message": "m"},
        {**VALID_CHUNK, "data": {"not": "a list"}},
        {**VALID_CHUNK, "stream": "has spaces"},
        {**VALID_CHUNK, "stream_truncated": False},
        {k: v for k, v in VALID_CHUNK.items() if k != "attempt"},
        {"type": "pong", "extra": True},
        {"type": "error", "message": ""},
    ],
)
def test_schemas_reject_what_the_server_never_sends(validators, message):
    assert not validators[message["type"]].is_valid(message)


def test_schemas_accept_the_valid_examples(validators):
    check(validators, VALID_STATUS)
    check(validators, VALID_NODE)
    check(validators, VALID_CHUNK)
    check(validators, {**VALID_CHUNK, "data": [1, {"a": None}], "stream_truncated": True})


MULTIPLEX = "/api/v1/ws"


@pytest.mark.django_db(transaction=True)
async def test_every_message_of_the_multiplexed_socket_matches_its_schema(user, token, validators):
    quick = await record(
        make_workflow, owner=user, definition=chain(node("t", "transform", expression="x"))
    )
    waiting = await record(
        make_workflow, owner=user, definition=chain(node("w", "delay", seconds=30))
    )
    sent = [
        {"type": "subscribe", "feed": "executions", "filter": {"status": ["completed"]}},
        {"type": "subscribe", "feed": "executions", "cursor": 12},
    ]
    seen = []
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        await socket.send_json_to(sent[0])
        done = await record(make_execution, owner=user, workflow=quick, input_data={"x": 1})
        held = await record(make_execution, owner=user, workflow=waiting)
        requests = [
            {"type": "subscribe", "execution_id": str(done.id), "last_seq": 0},
            {"type": "subscribe", "execution_id": str(held.id)},
            {"type": "subscribe", "execution_id": "not-a-uuid"},
            {"type": "subscribe", "execution_id": str(held.id), "last_seq": "x"},
        ]
        for request in requests:
            await socket.send_json_to(request)
        sent += requests
        # Until the quick one ended (its unsubscribed) and the feed sent its completion.
        while not (
            any(m["type"] == "unsubscribed" for m in seen)
            and any(m["type"] == "execution" for m in seen)
        ):
            seen.append(await receive(socket))
        for request in (
            {"type": "unsubscribe", "execution_id": str(held.id)},
            {"type": "unsubscribe", "feed": "executions"},
            sent[1],
            {"type": "follow"},
        ):
            sent.append(request)
            await socket.send_json_to(request)

        # Answers to unsubscribes come from tasks: in any order with the error.
        def answered() -> bool:
            requested = [m for m in seen if m.get("reason") == "requested"]
            unknown = [m for m in seen if "Unknown message type" in m.get("message", "")]
            return len(requested) == 2 and len(unknown) == 1

        while not answered():
            seen.append(await receive(socket))

    for message in seen:
        check(validators, message)
    kinds = {m["type"] for m in seen}
    assert {"status", "node", "log", "execution", "unsubscribed", "error"} <= kinds
    reasons = {
        (m.get("feed") or "execution", m["reason"]) for m in seen if m["type"] == "unsubscribed"
    }
    assert reasons == {
        ("execution", "ended"),
        ("execution", "requested"),
        ("executions", "requested"),
    }
    errors = [m for m in seen if m["type"] == "error"]
    assert [e.get("code") for e in errors] == [4404, 4400, 4400, None]
    assert validators["subscriptionError"].is_valid(errors[0])
    assert validators["error"].is_valid(errors[-1])
    for request in sent[:-1]:
        if request.get("cursor") == 12 or request.get("last_seq") == "x" or "not-a" in str(request):
            assert not validators[request["type"]].is_valid(request), request
        else:
            validators[request["type"]].validate(request)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe"},
        {"type": "subscribe", "execution_id": VALID_STATUS["execution_id"], "feed": "executions"},
        {"type": "subscribe", "feed": "executions", "last_seq": 3},
        {"type": "subscribe", "feed": "executions", "filter": {"colour": "red"}},
        {"type": "unsubscribe"},
        {"type": "unsubscribed", "reason": "ended"},
        {"type": "unsubscribed", "execution_id": VALID_STATUS["execution_id"], "reason": "bored"},
        {"type": "execution", "feed": "executions", "execution": {}, "cursor": "pg:1"},
    ],
)
def test_multiplexed_schemas_reject_what_is_never_sent(validators, message):
    assert not validators[message["type"]].is_valid(message)
