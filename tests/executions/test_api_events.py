"""The events endpoint and the node list in an execution's detail."""

import pytest
from channels.db import database_sync_to_async

import tests.executions.nodes  # noqa: F401  registers the test node types
from executions.engine.runner import run_execution
from tests.conftest import bearer_client
from tests.factories import chain, make_execution, make_user, make_workflow, node

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]


@database_sync_to_async
def setup(definition, input_data=None):
    user = make_user()
    return user, make_execution(user, make_workflow(user, definition), input_data or {})


async def finished(definition, input_data=None):
    user, execution = await setup(definition, input_data)
    await run_execution(execution.id)
    return user, execution


def get(user, path):
    response = bearer_client(user).get(path)
    return response.status_code, response.json()


async def test_events_pages_are_the_socket_messages_in_order():
    definition = chain(node("a", "log", message="one"), node("b", "log", message="two"))
    user, execution = await finished(definition)
    base = f"/api/v1/executions/{execution.id}/events"

    status, everything = await database_sync_to_async(get)(user, f"{base}?limit=1000")
    assert status == 200 and everything["next"] is None
    events = everything["results"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "status" and events[-1]["status"] == "completed"
    assert all(e["execution_id"] == str(execution.id) and "timestamp" in e for e in events)

    collected, path = [], f"{base}?after=2&limit=3"
    while path:
        status, page = await database_sync_to_async(get)(user, path)
        assert status == 200 and len(page["results"]) <= 3
        collected += page["results"]
        path = page["next"]
    assert collected == events[2:]


async def test_events_reject_bad_parameters():
    user, execution = await finished(chain(node("a", "log", message="x")))
    base = f"/api/v1/executions/{execution.id}/events"
    for query in ("after=-1", "after=abc", "limit=0", "limit=1001", "wait=-1", "wait=31"):
        status, body = await database_sync_to_async(get)(user, f"{base}?{query}")
        assert status == 400, query
        assert set(body) <= {"after", "limit", "wait"}


async def test_a_long_poll_on_an_ended_execution_answers_at_once():
    user, execution = await finished(chain(node("a", "log", message="x")))
    base = f"/api/v1/executions/{execution.id}/events"
    status, page = await database_sync_to_async(get)(user, f"{base}?after=1000&wait=30")
    assert (status, page) == (200, {"next": None, "results": []})


@pytest.mark.django_db
def test_long_polls_past_the_users_cap_are_refused_before_they_wait(settings):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 0
    user = make_user()
    execution = make_execution(user, make_workflow(user, chain(node("a", "log", message="x"))))
    base = f"/api/v1/executions/{execution.id}/events"
    status, body = get(user, f"{base}?after=1000&wait=5")
    assert status == 429 and "REALTIME_MAX_SOCKETS_PER_USER" in body["detail"]
    assert get(user, f"{base}?after=1000") == (200, {"next": None, "results": []})


async def test_events_of_someone_elses_execution_are_not_found():
    _, execution = await finished(chain(node("a", "log", message="x")))
    stranger = await database_sync_to_async(make_user)()
    status, _ = await database_sync_to_async(get)(
        stranger, f"/api/v1/executions/{execution.id}/events"
    )
    assert status == 404


async def test_detail_lists_each_node_with_attempts_timings_output_and_error():
    definition = {
        "nodes": [
            {**node("flaky", "test_flaky", fail_times=1), "retries": 1, "retry_backoff_seconds": 0},
            node("boom", "fail", message="kaput"),
            node("after", "log", message="never"),
        ],
        "edges": [{"source": "flaky", "target": "boom"}, {"source": "boom", "target": "after"}],
    }
    user, execution = await finished(definition)
    status, detail = await database_sync_to_async(get)(user, f"/api/v1/executions/{execution.id}")
    assert status == 200 and detail["status"] == "failed"
    nodes = {n["node_id"]: n for n in detail["nodes"]}
    assert list(nodes) == ["flaky", "boom", "after"]
    assert nodes["flaky"]["status"] == "completed" and nodes["flaky"]["attempts"] == 2
    assert nodes["flaky"]["output"] == {"attempt": 2} and nodes["flaky"]["error"] is None
    assert nodes["flaky"]["duration"] >= 0 and nodes["flaky"]["finished_at"]
    assert nodes["boom"]["status"] == "failed" and nodes["boom"]["error"] == "kaput"
    assert nodes["after"]["status"] == "skipped" and nodes["after"]["started_at"] is None
    status, listing = await database_sync_to_async(get)(user, "/api/v1/executions")
    assert "nodes" not in listing["results"][0]


async def test_large_outputs_are_cut_in_events_but_whole_in_the_detail(settings):
    settings.EXECUTIONS_EVENT_OUTPUT_LIMIT = 50
    big = {"text": "x" * 500}
    user, execution = await finished(chain(node("echo", "transform", expression="@")), big)
    _, page = await database_sync_to_async(get)(user, f"/api/v1/executions/{execution.id}/events")
    completed = next(
        e for e in page["results"] if e["type"] == "node" and e["status"] == "completed"
    )
    assert completed["output_truncated"] is True
    assert completed["output_size"] == len('{"text": "' + "x" * 500 + '"}')
    assert len(completed["output"]) == 51 and completed["output"].endswith("…")
    _, detail = await database_sync_to_async(get)(user, f"/api/v1/executions/{execution.id}")
    assert detail["nodes"][0]["output"] == big
