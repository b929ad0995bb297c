"""``/api/v1/ws``: one socket, many executions, each stream as its own socket would send it."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from executions import services
from tests.factories import make_execution, make_token, make_user
from tests.realtime.helpers import (
    Publisher,
    assert_open,
    assert_released,
    assert_stream_matches_log,
    bearer,
    expected,
    open_socket,
    parsed,
    path_for,
    receive,
    receive_refusal,
    receive_until_close,
    record,
    socket_slots,
    stored_events,
    watched,
)

pytestmark = pytest.mark.django_db(transaction=True)

MULTIPLEX = "/api/v1/ws"

new_execution = database_sync_to_async(make_execution)
new_user = database_sync_to_async(make_user)
new_token = database_sync_to_async(make_token)


async def receive_for(socket, execution_id, count: int) -> list[dict]:
    """The next ``count`` messages, which must all be about ``execution_id``."""
    messages = [await receive(socket) for _ in range(count)]
    assert {m["execution_id"] for m in messages} == {str(execution_id)}, messages
    return messages


async def receive_all(socket, until: int, timeout: float = 5) -> list[dict]:
    """Messages until ``until`` of them are ``unsubscribed``."""
    messages, ended = [], 0
    while ended < until:
        message = await receive(socket, timeout)
        messages.append(message)
        ended += message["type"] == "unsubscribed"
    return messages


def stream_of(messages: list[dict], execution_id) -> list[dict]:
    return [m for m in messages if m.get("execution_id") == str(execution_id)]


async def complete(execution_id, result=1) -> None:
    await record(services.execution_start, execution_id=execution_id)
    await record(
        services.execution_log,
        execution_id=execution_id,
        node_id=None,
        level="info",
        message="working",
    )
    await record(services.execution_complete, execution_id=execution_id, result=result)


async def test_a_subscription_streams_like_the_per_execution_socket_then_says_it_ended(
    held_execution, token
):
    execution_id = held_execution.id
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": str(execution_id)})
        snapshot = await receive(socket)
        await complete(execution_id)
        messages = await receive_all(socket, until=1)
        *stream, unsubscribed = messages
        assert unsubscribed == {
            "type": "unsubscribed",
            "execution_id": str(execution_id),
            "reason": "ended",
        }
        multiplexed = [snapshot, *stream]
        assert_stream_matches_log(multiplexed, await stored_events(execution_id))
        # The socket stays open.
        await assert_open(socket)
    # The same as the per-execution socket sends, from the start of the log.
    async with open_socket(path_for(execution_id, "last_seq=0"), bearer(token)) as single:
        alone, code = await receive_until_close(single)
    assert code == 1000
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        await socket.send_json_to(
            {"type": "subscribe", "execution_id": str(execution_id), "last_seq": 0}
        )
        *resumed, unsubscribed = await receive_all(socket, until=1)
    assert resumed == alone
    assert unsubscribed["reason"] == "ended"


async def test_one_socket_follows_many_executions_each_complete_and_in_order(user, no_dispatch):
    token = await new_token(user)
    executions = [await new_execution(user) for _ in range(20)]
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        for execution in executions:
            await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
        snapshots = [await receive(socket) for _ in executions]
        assert {s["execution_id"] for s in snapshots} == {str(e.id) for e in executions}
        await asyncio.gather(*(complete(e.id, result=n) for n, e in enumerate(executions)))
        messages = snapshots + await receive_all(socket, until=len(executions))
    for execution in executions:
        *stream, unsubscribed = stream_of(messages, execution.id)
        assert unsubscribed["type"] == "unsubscribed"
        assert_stream_matches_log(stream, await stored_events(execution.id))


async def test_unsubscribe_stops_the_stream_and_others_carry_on(user, no_dispatch):
    token = await new_token(user)
    first, second = await new_execution(user), await new_execution(user)
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        for execution in (first, second):
            await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
            await receive_for(socket, execution.id, 1)
        await socket.send_json_to({"type": "unsubscribe", "execution_id": str(first.id)})
        assert await receive(socket) == {
            "type": "unsubscribed",
            "execution_id": str(first.id),
            "reason": "requested",
        }
        await complete(first.id)
        await complete(second.id)
        rest = await receive_all(socket, until=1)
        assert stream_of(rest, first.id) == []
        assert rest[-1] == {
            "type": "unsubscribed",
            "execution_id": str(second.id),
            "reason": "ended",
        }
        assert watched(first.id) == [] and watched(second.id) == []
        await assert_open(socket)


async def test_subscribing_twice_is_idempotent(held_execution, token):
    execution_id = str(held_execution.id)
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": execution_id})
        await receive(socket)
        await socket.send_json_to({"type": "subscribe", "execution_id": execution_id})
        await assert_open(socket)  # nothing was sent for the second subscribe
        await record(services.execution_start, execution_id=held_execution.id)
        live = [await receive(socket) for _ in range(2)]
        assert [m["seq"] for m in live] == [2, 3]  # once each


@pytest.mark.parametrize(
    ("request_fields", "code"),
    [
        ({"execution_id": "not-a-uuid"}, 4404),
        ({"execution_id": "00000000-0000-0000-0000-000000000000"}, 4404),
        ({"execution_id": 12}, 4400),
        ({"execution_id": None}, 4400),
        ({"last_seq": -1}, 4400),
        ({"last_seq": "3"}, 4400),
        ({"last_seq": True}, 4400),
        ({"last_seq": 99}, 4400),  # ahead of the log
    ],
)
async def test_a_refused_subscription_gets_an_error_and_the_others_carry_on(
    user, no_dispatch, request_fields, code
):
    token = await new_token(user)
    healthy, target = await new_execution(user), await new_execution(user)
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": str(healthy.id)})
        await receive_for(socket, healthy.id, 1)
        await socket.send_json_to(
            {"type": "subscribe", "execution_id": str(target.id), **request_fields}
        )
        error = await receive(socket)
        assert error["type"] == "error" and error["code"] == code, error
        assert set(error) == {"type", "execution_id", "code", "message"}
        assert error["message"].strip()
        await record(services.execution_start, execution_id=healthy.id)
        live = await receive_for(socket, healthy.id, 2)
        assert [m["seq"] for m in live] == [2, 3]


async def test_someone_elses_execution_is_not_found(no_dispatch):
    owner, other = await new_user("owner"), await new_user("other")
    theirs = await new_execution(owner)
    async with open_socket(MULTIPLEX, bearer(await new_token(other))) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": str(theirs.id)})
        error = await receive(socket)
        assert (error["type"], error["code"], error["execution_id"]) == (
            "error",
            4404,
            str(theirs.id),
        )
        await assert_open(socket)
        assert watched(theirs.id) == []


async def test_subscriptions_are_capped_per_socket(user, no_dispatch, settings):
    settings.REALTIME_MAX_SUBSCRIPTIONS = 2
    token = await new_token(user)
    executions = [await new_execution(user) for _ in range(3)]
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        for execution in executions[:2]:
            await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
            await receive_for(socket, execution.id, 1)
        await socket.send_json_to({"type": "subscribe", "execution_id": str(executions[2].id)})
        error = await receive(socket)
        assert (error["code"], error["execution_id"]) == (4429, str(executions[2].id))
        assert "REALTIME_MAX_SUBSCRIPTIONS" in error["message"]
        # An unsubscribe frees a place.
        await socket.send_json_to({"type": "unsubscribe", "execution_id": str(executions[0].id)})
        assert (await receive(socket))["reason"] == "requested"
        await socket.send_json_to({"type": "subscribe", "execution_id": str(executions[2].id)})
        assert (await receive(socket))["execution_id"] == str(executions[2].id)


async def test_a_dropped_terminal_event_still_ends_its_subscription(
    user, no_dispatch, monkeypatch, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 0.2
    token = await new_token(user)
    lossy, healthy = await new_execution(user), await new_execution(user)
    Publisher(
        monkeypatch,
        drop=lambda e: (
            e["execution_id"] == str(lossy.id)
            and e["type"] == "status"
            and e["status"] == "completed"
        ),
    )
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        for execution in (lossy, healthy):
            await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
            await receive_for(socket, execution.id, 1)
        await complete(lossy.id)
        messages = await receive_all(socket, until=1, timeout=3)
        *stream, unsubscribed = stream_of(messages, lossy.id)
        assert unsubscribed["reason"] == "ended"
        assert stream[-1]["status"] == "completed"
        events = await stored_events(lossy.id)
        assert [parsed(m) for m in stream] == [expected(e) for e in events if e.seq > 1]
        await record(services.execution_start, execution_id=healthy.id)
        assert [m["seq"] for m in await receive_for(socket, healthy.id, 2)] == [2, 3]


async def test_a_revoked_execution_ends_its_subscription_only(no_dispatch, settings):
    settings.REALTIME_RECHECK_INTERVAL = 0.2
    staff = await new_user("staff", staff=True)
    owner = await new_user("owner")
    theirs, own = await new_execution(owner), await new_execution(staff)
    async with open_socket(MULTIPLEX, bearer(await new_token(staff))) as socket:
        for execution in (theirs, own):
            await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
            await receive_for(socket, execution.id, 1)
        staff.is_staff = False
        await record(staff.save)
        error = await receive(socket, timeout=3)
        assert (error["type"], error["code"], error["execution_id"]) == (
            "error",
            4403,
            str(theirs.id),
        )
        await record(services.execution_start, execution_id=own.id)
        assert [m["seq"] for m in await receive_for(socket, own.id, 2)] == [2, 3]


async def test_a_revoked_user_has_the_socket_closed(user, no_dispatch, settings):
    settings.REALTIME_RECHECK_INTERVAL = 0.2
    execution = await new_execution(user)
    async with open_socket(MULTIPLEX, bearer(await new_token(user))) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
        await receive(socket)
        user.is_active = False
        await record(user.save)
        text, code = await receive_refusal(socket)
        assert code == 4403 and "deactivated" in text
    assert_released(execution.id, user.id)


async def test_the_socket_needs_authentication_and_counts_against_the_socket_cap(
    user, no_dispatch, settings
):
    async with open_socket(MULTIPLEX) as anonymous:
        _, code = await receive_refusal(anonymous)
        assert code == 4401
    settings.REALTIME_MAX_SOCKETS_PER_USER = 1
    token = await new_token(user)
    async with open_socket(MULTIPLEX, bearer(token)) as first:
        assert socket_slots(user.id) == 1
        async with open_socket(MULTIPLEX, bearer(token)) as second:
            _, code = await receive_refusal(second)
            assert code == 4429
        await assert_open(first)
    assert socket_slots(user.id) == 0


async def test_unknown_messages_get_an_error_naming_what_is_expected(token):
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        await socket.send_json_to({"type": "follow"})
        error = await receive(socket)
        assert error["type"] == "error" and "'subscribe'" in error["message"]
        await assert_open(socket)


async def test_closing_the_socket_releases_every_subscription(user, no_dispatch):
    token = await new_token(user)
    executions = [await new_execution(user) for _ in range(3)]
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        for execution in executions:
            await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
            await receive(socket)
    for execution in executions:
        assert_released(execution.id, user.id)


async def test_a_page_of_subscribes_at_once_is_within_the_limits(user, no_dispatch, settings):
    """Subscribe requests have their own budget: 50 at once is fine with 20 messages/s."""
    settings.REALTIME_MAX_MESSAGES_PER_SECOND = 20
    token = await new_token(user)
    executions = [await new_execution(user) for _ in range(50)]
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        for execution in executions:
            await socket.send_json_to({"type": "subscribe", "execution_id": str(execution.id)})
        snapshots = [await receive(socket) for _ in executions]
        assert {s["execution_id"] for s in snapshots} == {str(e.id) for e in executions}
        await assert_open(socket)


async def test_too_many_subscribe_requests_in_one_second_close_the_socket(
    user, no_dispatch, settings
):
    settings.REALTIME_MAX_SUBSCRIBES_PER_SECOND = 5
    token = await new_token(user)
    execution = await new_execution(user)
    async with open_socket(MULTIPLEX, bearer(token)) as socket:
        for _ in range(6):
            await socket.send_json_to({"type": "unsubscribe", "execution_id": str(execution.id)})
        messages, code = await receive_until_close(socket)
        assert code == 1008
        assert "REALTIME_MAX_SUBSCRIBES_PER_SECOND" in messages[-1]["message"]
