"""The executions feed on /api/v1/ws: states as they change, filtered, resumable."""

import asyncio
from contextlib import AsyncExitStack

import pytest
from channels.db import database_sync_to_async

from executions import services
from executions.models import Execution
from tests.factories import make_execution, make_token, make_user, make_workflow
from tests.realtime.helpers import assert_open, bearer, open_socket, receive, record

pytestmark = pytest.mark.django_db(transaction=True)

MULTIPLEX = "/api/v1/ws"
FEED_KEYS = {
    "id",
    "workflow_id",
    "workflow_name",
    "status",
    "progress",
    "message",
    "execution_time",
    "created_at",
    "started_at",
    "finished_at",
    "tags",
    "last_seq",
}

new_execution = database_sync_to_async(make_execution)
new_user = database_sync_to_async(make_user)
new_token = database_sync_to_async(make_token)
new_workflow = database_sync_to_async(make_workflow)


@database_sync_to_async
def new_tagged(owner, tags):
    workflow = make_workflow(owner)
    return services.execution_create(owner=owner, workflow=workflow, input_data={}, tags=tags)


async def subscribe_feed(socket, **fields) -> None:
    await socket.send_json_to({"type": "subscribe", "feed": "executions", **fields})


async def states_until(socket, done, timeout: float = 5) -> list[dict]:
    """``execution`` messages until ``done(messages)`` holds."""
    messages: list[dict] = []
    while not done(messages):
        message = await receive(socket, timeout)
        assert message["type"] == "execution", message
        assert message["feed"] == "executions"
        assert set(message["execution"]) == FEED_KEYS
        assert isinstance(message["cursor"], str)
        messages.append(message)
    return messages


def latest(messages: list[dict]) -> dict[str, dict]:
    """Each execution's state with the highest ``last_seq``, as a client keeps them."""
    kept: dict[str, dict] = {}
    for message in messages:
        state = message["execution"]
        if state["id"] not in kept or state["last_seq"] >= kept[state["id"]]["last_seq"]:
            kept[state["id"]] = state
    return kept


async def run_to_end(execution_id) -> None:
    await record(services.execution_start, execution_id=execution_id)
    await record(services.execution_progress, execution_id=execution_id, progress=50)
    await record(services.execution_complete, execution_id=execution_id, result=1)


async def test_the_feed_starts_with_the_newest_executions_then_sends_each_change(
    user, no_dispatch, settings
):
    settings.REALTIME_FEED_BACKLOG = 3
    older = [await new_execution(user) for _ in range(5)]
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await subscribe_feed(socket)
        backlog = await states_until(socket, lambda m: len(m) == 3)
        assert [m["execution"]["id"] for m in backlog] == [str(e.id) for e in older[::-1][:3]]
        created = await new_execution(user)
        await run_to_end(created.id)
        live = await states_until(
            socket, lambda m: m and m[-1]["execution"]["status"] == "completed"
        )
        assert {m["execution"]["id"] for m in live} == {str(created.id)}
        seqs = [m["execution"]["last_seq"] for m in live]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # each state once, in order
        final = live[-1]["execution"]
        assert (final["status"], final["progress"], final["last_seq"]) == (
            "completed",
            100,
            (await record(lambda: created.events.count())),
        )
        await assert_open(socket)


async def test_a_filter_sends_only_what_matches(user, no_dispatch):
    mine = await new_workflow(user)
    other = await new_workflow(user)
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await subscribe_feed(
            socket, filter={"workflow_id": str(mine.id), "status": ["running", "completed"]}
        )
        on_other = await new_execution(user, other)
        on_mine = await new_execution(user, mine)
        await run_to_end(on_other.id)
        await run_to_end(on_mine.id)
        messages = await states_until(
            socket, lambda m: m and m[-1]["execution"]["status"] == "completed"
        )
    assert {m["execution"]["id"] for m in messages} == {str(on_mine.id)}
    assert {m["execution"]["status"] for m in messages} <= {"running", "completed"}


async def test_a_tag_filter(user, no_dispatch):
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await subscribe_feed(socket, filter={"tag": "nightly"})
        await new_tagged(user, ["adhoc"])
        tagged = await new_tagged(user, ["nightly", "eu"])
        [message] = await states_until(socket, lambda m: len(m) == 1)
        assert message["execution"]["id"] == str(tagged.id)
        assert message["execution"]["tags"] == ["nightly", "eu"]


async def test_others_executions_stay_out_of_a_users_feed_but_not_of_staffs(no_dispatch):
    alice, bob = await new_user("alice"), await new_user("bob")
    staff = await new_user("staff", staff=True)
    async with (
        open_socket(MULTIPLEX, bearer(await new_token(alice))) as alices,
        open_socket(MULTIPLEX, bearer(await new_token(staff))) as staffs,
    ):
        await subscribe_feed(alices)
        await subscribe_feed(staffs)
        bobs = await new_execution(bob)
        own = await new_execution(alice)
        [seen] = await states_until(alices, lambda m: len(m) == 1)
        assert seen["execution"]["id"] == str(own.id)
        both = await states_until(staffs, lambda m: len(m) == 2)
        assert {m["execution"]["id"] for m in both} == {str(bobs.id), str(own.id)}


async def test_a_resumed_feed_brings_every_change_after_its_cursor(user, no_dispatch):
    token = await new_token(user)
    watched = [await new_execution(user) for _ in range(3)]
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        await subscribe_feed(socket)
        messages = await states_until(socket, lambda m: len(m) == 3)
    cursor = messages[-1]["cursor"]
    # While nobody watches: two change, one more is created.
    await run_to_end(watched[0].id)
    await record(services.execution_start, execution_id=watched[2].id)
    created = await new_execution(user)
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        await subscribe_feed(socket, cursor=cursor)
        resumed = await states_until(socket, lambda m: len(m) == 3)
        kept = latest(resumed)
        assert set(kept) == {str(watched[0].id), str(watched[2].id), str(created.id)}
        assert kept[str(watched[0].id)]["status"] == "completed"
        assert kept[str(watched[2].id)]["status"] == "running"
        assert kept[str(created.id)]["status"] == "pending"
        # Then live, from there.
        await record(services.execution_start, execution_id=watched[1].id)
        [live] = await states_until(socket, lambda m: len(m) == 1)
        assert (live["execution"]["id"], live["execution"]["status"]) == (
            str(watched[1].id),
            "running",
        )


async def test_a_dropped_announcement_delays_a_change_but_never_loses_it(
    user, no_dispatch, monkeypatch, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 0.3
    import realtime.signals

    original = realtime.signals.publish_many
    monkeypatch.setattr(
        realtime.signals,
        "publish_many",
        lambda messages: original([m for m in messages if m[1]["type"] != "feed.changed"]),
    )
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await subscribe_feed(socket)
        created = await new_execution(user)
        await run_to_end(created.id)
        messages = await states_until(
            socket, lambda m: m and m[-1]["execution"]["status"] == "completed", timeout=3
        )
        assert latest(messages)[str(created.id)]["status"] == "completed"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"feed": "runs"}, "runs"),
        ({"feed": 3}, None),
        ({"feed": "executions", "filter": {"status": ["sleeping"]}}, "executions"),
        ({"feed": "executions", "filter": {"colour": "red"}}, "executions"),
        ({"feed": "executions", "cursor": 12}, "executions"),
        ({"feed": "executions", "cursor": "not a cursor"}, "executions"),
    ],
)
async def test_a_bad_feed_subscription_gets_an_error_and_the_socket_carries_on(
    user, no_dispatch, fields, named
):
    execution = await new_execution(user)
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
        await receive(socket)
        await socket.send_json_to({"type": "subscribe", **fields})
        error = await receive(socket)
        assert (error["type"], error["code"], error["feed"]) == ("error", 4400, named), error
        assert error["message"].strip()
        await record(services.execution_start, execution_id=execution.id)
        assert [(await receive(socket))["seq"] for _ in range(2)] == [2, 3]


async def test_unsubscribing_from_the_feed_stops_it(user, no_dispatch):
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await subscribe_feed(socket)
        await socket.send_json_to({"type": "unsubscribe", "feed": "executions"})
        assert await receive(socket) == {
            "type": "unsubscribed",
            "feed": "executions",
            "reason": "requested",
        }
        await new_execution(user)
        await asyncio.sleep(0.3)
        await assert_open(socket)  # the pong is the next message: nothing of the feed came


async def test_an_execution_leaving_a_status_filter_is_sent_once_more(user, no_dispatch):
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await subscribe_feed(socket, filter={"status": ["running"]})
        never_ran = await new_execution(user)
        ran = await new_execution(user)
        await record(services.execution_start, execution_id=ran.id)
        messages = await states_until(socket, lambda m: len(m) == 1)
        await record(services.execution_complete, execution_id=ran.id, result=1)
        messages += await states_until(
            socket, lambda m: m and m[-1]["execution"]["status"] != "running"
        )
        # A later change of one that left (or never entered) the filter: nothing.
        await record(services.execution_cancel, execution_id=never_ran.id)
        await asyncio.sleep(0.3)
        await assert_open(socket)
    assert {m["execution"]["id"] for m in messages} == {str(ran.id)}
    *running, left = [m["execution"] for m in messages]
    assert {s["status"] for s in running} == {"running"}
    assert left["status"] == "completed"


async def test_many_feeds_of_one_process_share_one_read_of_the_changes(
    user, no_dispatch, monkeypatch, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 60  # only announcements start reads here
    import realtime.feeds

    reads = []
    changes = realtime.feeds.feed_changes

    def counted(cursor, **kwargs):
        reads.append(cursor)
        return changes(cursor, **kwargs)

    monkeypatch.setattr(realtime.feeds, "feed_changes", counted)
    token = await new_token(user)
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(open_socket(MULTIPLEX, bearer(token))) for _ in range(5)
        ]
        for socket in sockets:
            await subscribe_feed(socket)
        await asyncio.sleep(0.2)  # each feed's own first read, and the hub's catch-up
        before = len(reads)
        created = await new_execution(user)
        for socket in sockets:
            [message] = await states_until(socket, lambda m: len(m) == 1)
            assert message["execution"]["id"] == str(created.id)
        await asyncio.sleep(realtime.feeds.PUSHED_READ_INTERVAL + 0.3)
        assert len(reads) - before == 1, reads[before:]
        for socket in sockets:
            await assert_open(socket)  # the pong comes next: the read sent nothing again


async def test_a_change_goes_out_with_its_announcement_before_any_read(
    user, no_dispatch, monkeypatch, settings
):
    """A status change's state comes with its announcement: the feed sends it at
    once, the execution's workflow named, and the later read sends nothing again."""
    settings.REALTIME_RECHECK_INTERVAL = 60
    import realtime.feeds

    monkeypatch.setattr(realtime.feeds, "PUSHED_READ_INTERVAL", 5.0)
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await subscribe_feed(socket)
        await asyncio.sleep(0.2)  # the feed's own read, and the hub's catch-up
        reads = []
        changes = realtime.feeds.feed_changes
        monkeypatch.setattr(
            realtime.feeds, "feed_changes", lambda *a, **k: reads.append(a) or changes(*a, **k)
        )
        created = await new_execution(user)  # its workflow is loaded: named
        [made] = await states_until(socket, lambda m: len(m) == 1)
        await record(services.execution_start, execution_id=created.id)  # not loaded
        [started] = await states_until(socket, lambda m: len(m) == 1)
        assert reads == []
        assert (made["execution"]["status"], started["execution"]["status"]) == (
            "pending",
            "running",
        )
        assert started["execution"]["workflow_name"] == created.workflow.name
        stored = await database_sync_to_async(Execution.objects.get)(id=created.id)
        assert started["execution"]["last_seq"] == stored.last_seq > made["execution"]["last_seq"]
        assert started["cursor"] == made["cursor"]  # the last read's: a resume reads both


async def test_unsubscribing_from_an_unknown_feed_names_it_in_the_error(user):
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await socket.send_json_to({"type": "unsubscribe", "feed": "runs"})
        error = await receive(socket)
        assert (error["type"], error["code"], error["feed"]) == ("error", 4400, "runs")
        await assert_open(socket)


async def test_each_announced_state_is_what_a_read_gives_at_that_seq(
    user, no_dispatch, monkeypatch
):
    """The state a writer announces is the one a read of the feed returns once that
    change committed: pushed and read messages never disagree."""
    import realtime.signals
    from executions.feed import executions_for_feed, feed_state

    announced, read = [], []
    original = realtime.signals.publish_many

    def recorded(messages):
        for _, message in messages:
            if message.get("type") == "feed.changed":
                announced.append(message.get("state"))
                state = feed_state(executions_for_feed().get(id=message["execution_id"]))
                read.append(state)
        return original(messages)

    monkeypatch.setattr(realtime.signals, "publish_many", recorded)
    created = await new_execution(user)
    await run_to_end(created.id)
    assert [s["status"] for s in read] == ["pending", "running", "running", "completed"]
    name = created.workflow.name
    assert announced[0] == read[0]  # created with its workflow: named
    for state, expected in zip(announced[1:], read[1:], strict=True):
        # A writer that did not load the workflow leaves its name out.
        assert state["workflow_name"] in (None, name)
        assert {**state, "workflow_name": name} == expected
