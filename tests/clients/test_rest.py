"""The clients' REST calls against the real server: what they send, what they give
back, and the errors they raise."""

import asyncio
import uuid

import pytest
from workflow_push import ApiError, AsyncClient, Client, Unreachable

from tests.clients.conftest import STEPS
from tests.factories import chain, node

pytestmark = pytest.mark.embedded


def test_workflows_and_executions_through_the_blocking_client(live):
    with Client(live.url, token=live.token) as client:
        workflow = client.create_workflow("rest", STEPS, description="made by the client")
        assert client.get_workflow(workflow["id"]) == workflow
        assert workflow["id"] in [w["id"] for w in client.list_workflows()]
        renamed = client.update_workflow(workflow["id"], name="rest, renamed")
        assert (renamed["name"], renamed["definition"]) == ("rest, renamed", STEPS)

        tag = f"t{uuid.uuid4().hex[:8]}"
        first = client.create_execution(workflow["id"], {"input": 1}, tags=[tag])
        second = client.create_execution(uuid.UUID(workflow["id"]), tags=[tag, "other"])
        assert (first["status"], first["input_data"], first["tags"]) == (
            "pending",
            {"input": 1},
            [tag],
        )
        assert second["input_data"] == {}

        listed = list(client.list_executions(tag=tag))
        assert [e["id"] for e in listed] == [second["id"], first["id"]], "newest first"
        assert [
            e["id"] for e in client.list_executions(tag="other", workflow_id=workflow["id"])
        ] == [second["id"]]
        events = list(client.follow(first["id"], last_seq=0))
        assert events[-1]["status"] == "completed"
        detail = client.get_execution(first["id"])
        assert (detail["result"], [n["node_id"] for n in detail["nodes"]][:1]) == (
            {"echo": 1},
            ["greet"],
        )
        assert list(client.events(first["id"])) == events
        assert list(client.events(first["id"], after=5)) == events[5:]

        with pytest.raises(ApiError) as finished:
            client.cancel(first["id"])
        assert finished.value.status == 409


def test_a_long_listing_is_read_page_by_page(live):
    with Client(live.url, token=live.token) as client:
        workflow = client.create_workflow("pages", chain(node("only", "delay", seconds=0)))
        tag = f"p{uuid.uuid4().hex[:8]}"
        made = [client.create_execution(workflow["id"], tags=[tag])["id"] for _ in range(53)]

        listed = [e["id"] for e in client.list_executions(tag=tag)]

    assert listed == made[::-1], "53 executions over two pages of 50, each once"


def test_errors_carry_the_status_and_the_servers_detail(live):
    with Client(live.url, token=live.token) as client:
        with pytest.raises(ApiError) as invalid:
            client.create_workflow("bad", {"nodes": [{"id": "x", "type": "nope", "params": {}}]})
        assert invalid.value.status == 400
        assert "definition" in invalid.value.detail, invalid.value.detail

        with pytest.raises(ApiError) as missing:
            client.get_execution(uuid.uuid4())
        assert missing.value.status == 404 and isinstance(missing.value.detail, str)
        assert "404" in str(missing.value) and "/api/v1/executions/" in str(missing.value)

    with Client(live.url, token="wrong") as stranger, pytest.raises(ApiError) as refused:
        stranger.get_workflow(uuid.uuid4())
    assert refused.value.status == 401

    with Client("http://127.0.0.1:9", token="t") as nowhere, pytest.raises(Unreachable):
        nowhere.get_execution(uuid.uuid4())


def test_the_async_client_makes_the_same_calls(live):
    async def scenario():
        async with AsyncClient(live.url, token=live.token) as client:
            workflow = await client.create_workflow("async rest", STEPS)
            listed = [w async for w in client.list_workflows()]
            execution = await client.create_execution(workflow["id"], {"input": "a"}, ["async"])
            events = [e async for e in client.follow(execution["id"])]
            stored = [e async for e in client.events(execution["id"])]
            with pytest.raises(ApiError) as finished:
                await client.cancel(execution["id"])
            assert finished.value.status == 409
            await client.delete_workflow((await client.create_workflow("gone", STEPS))["id"])
            return workflow, listed, events, stored, await client.get_execution(execution["id"])

    workflow, listed, events, stored, detail = asyncio.run(scenario())

    assert workflow["id"] in [w["id"] for w in listed]
    assert "gone" not in [w["name"] for w in listed]
    assert events[-1] == stored[-1] and events[-1]["status"] == "completed"
    assert [e["seq"] for e in events[1:]] == [
        e["seq"] for e in stored if e["seq"] > events[0]["seq"]
    ]
    assert detail["result"] == {"echo": "a"} and detail["tags"] == ["async"]
