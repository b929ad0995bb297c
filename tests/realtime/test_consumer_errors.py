"""Whatever ends a socket, it gives back all it holds; a database error closes with 1013."""

import asyncio
import logging
from contextlib import AsyncExitStack

import pytest
from django.db import OperationalError

import realtime.subscription
from executions import services, wire
from tests.realtime.helpers import (
    Publisher,
    assert_released,
    bearer,
    expected,
    group_members,
    open_socket,
    parsed,
    path_for,
    receive,
    receive_until_close,
    record,
    socket_slots,
    stored_events,
    watched,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Pages of two events, so that a resume of a few events reads several pages.
PAGE = 2


class FailingRead:
    """Stands in for a selector the consumer reads through: the chosen calls raise."""

    def __init__(self, monkeypatch, name: str, failing: set[int]):
        self.read = getattr(realtime.subscription, name)
        self.failing = failing
        self.calls = 0
        monkeypatch.setattr(realtime.subscription, name, self.call)

    def call(self, *args, **kwargs):
        self.calls += 1
        if self.calls in self.failing:
            raise OperationalError("terminating connection due to administrator command")
        return self.read(*args, **kwargs)


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(realtime.subscription, "CATCH_UP_PAGE", PAGE)


async def record_logs(execution_id, count: int) -> None:
    for n in range(count):
        await record(
            services.execution_log,
            execution_id=execution_id,
            node_id="n",
            level="info",
            message=f"line {n}",
        )


def database_errors_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], OperationalError)]


async def assert_closed_to_retry(socket, execution_id, user_id) -> list[dict]:
    """The messages up to the close; that close is a 1013 after an ``error`` saying why."""
    messages, code = await receive_until_close(socket)
    *sent, error = messages
    assert code == 1013
    assert error["type"] == "error" and "reconnect" in error["message"]
    # The slot is free as soon as the server closes: the client may reconnect at once.
    assert socket_slots(user_id) == 0
    assert watched(execution_id) == []
    return sent


@pytest.mark.parametrize(
    ("read", "failing", "query"),
    [
        ("execution_visible_to", {1}, ""),  # connect
        ("events_after", {1}, "last_seq=0"),  # the resume's first page
        ("events_after", {2}, "last_seq=0"),  # its second page
        ("events_after", {3}, "last_seq=0"),  # its last one
    ],
    ids=["connect", "resume-page-1", "resume-page-2", "resume-page-3"],
)
async def test_a_database_error_while_connecting_closes_1013_and_releases_everything(
    held_execution, user, token, monkeypatch, small_pages, caplog, read, failing, query
):
    execution_id = held_execution.id
    await record_logs(execution_id, 2 * PAGE)  # seqs 2..5: pages [1, 2], [3, 4], [5]
    failure = FailingRead(monkeypatch, read, failing)
    async with open_socket(path_for(execution_id, query), bearer(token)) as socket:
        sent = await assert_closed_to_retry(socket, execution_id, user.pk)
    assert failure.calls == max(failing)
    if read == "events_after":
        assert [m["seq"] for m in sent] == list(range(1, PAGE * (max(failing) - 1) + 1))
    assert_released(execution_id, user.pk)
    assert len(database_errors_logged(caplog)) == 1


async def test_a_database_error_while_filling_a_gap_closes_1013_and_releases_everything(
    held_execution, user, token, monkeypatch, settings, caplog
):
    settings.REALTIME_RECHECK_INTERVAL = 600  # only the gap fill reads the log
    Publisher(monkeypatch, drop=lambda event: event["seq"] == 2)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        assert (await receive(socket))["seq"] == 1
        FailingRead(monkeypatch, "events_after", {1})
        await record(services.execution_start, execution_id=execution_id)  # 2 lost, 3 a gap
        assert await assert_closed_to_retry(socket, execution_id, user.pk) == []
    assert_released(execution_id, user.pk)
    assert len(database_errors_logged(caplog)) == 1


async def test_a_database_error_in_the_watchdogs_catch_up_closes_1013_and_releases_everything(
    held_execution, user, token, monkeypatch, settings, caplog
):
    settings.REALTIME_RECHECK_INTERVAL = 0.05
    Publisher(monkeypatch, drop=lambda event: True)  # only the watchdog sees them
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        assert (await receive(socket))["seq"] == 1
        failure = FailingRead(monkeypatch, "events_after", {1})
        await record(services.execution_start, execution_id=execution_id)
        assert await assert_closed_to_retry(socket, execution_id, user.pk) == []
    assert failure.calls == 1
    assert_released(execution_id, user.pk)
    assert len(database_errors_logged(caplog)) == 1


async def test_after_a_database_error_mid_resume_resuming_again_sends_each_event_once(
    held_execution, token, monkeypatch, small_pages
):
    execution_id = held_execution.id
    await record(services.execution_start, execution_id=execution_id)
    await record_logs(execution_id, 3)  # seqs 1..6
    FailingRead(monkeypatch, "events_after", {2})
    async with open_socket(path_for(execution_id, "last_seq=0"), bearer(token)) as socket:
        first = await receive_until_close(socket)
    *before, error = first[0]
    assert first[1] == 1013 and error["type"] == "error"
    resume_from = before[-1]["seq"]
    async with open_socket(path_for(execution_id, f"last_seq={resume_from}"), bearer(token)) as s:
        replayed = [await receive(s) for _ in range(6 - resume_from)]
        await record(services.execution_complete, execution_id=execution_id, result=None)
        live, code = await receive_until_close(s)

    assert code == 1000
    events = await stored_events(execution_id)
    assert [parsed(m) for m in [*before, *replayed, *live]] == [expected(e) for e in events]


async def test_sockets_closed_by_database_errors_do_not_count_against_the_socket_cap(
    held_execution, user, token, monkeypatch, settings
):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 2
    execution_id = held_execution.id
    FailingRead(monkeypatch, "events_after", {1, 2})
    path = path_for(execution_id, "last_seq=0")
    async with AsyncExitStack() as stack:
        for _ in range(2):
            crashed = await stack.enter_async_context(open_socket(path, bearer(token)))
            _, code = await receive_until_close(crashed)
            assert code == 1013
        # Both are still closing (their clients have not answered yet).
        healthy = await stack.enter_async_context(open_socket(path, bearer(token)))
        assert (await receive(healthy))["seq"] == 1
        assert socket_slots(user.pk) == 1
    assert_released(execution_id, user.pk)


async def test_a_bug_in_a_handler_closes_1011_after_an_error_logged_once(
    held_execution, user, token, monkeypatch, error_lines
):
    def broken(execution):
        raise RuntimeError("a bug")

    monkeypatch.setattr(wire, "snapshot_message", broken)
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        messages, code = await receive_until_close(socket)
    assert code == 1011
    assert [m["type"] for m in messages] == ["error"]
    assert_released(execution_id, user.pk)
    [line] = error_lines  # with its traceback and the execution it was about
    assert "RuntimeError: a bug" in line["traceback"]
    assert line["execution_id"] == str(execution_id)


async def test_a_socket_the_server_cancels_releases_everything(held_execution, user, token):
    execution_id = held_execution.id
    async with open_socket(path_for(execution_id), bearer(token)) as socket:
        assert (await receive(socket))["seq"] == 1
        assert len(watched(execution_id)) == 1 and len(group_members(execution_id)) == 1
        # As daphne does with an application that outlives its connection too long.
        socket.future.cancel()
        await asyncio.wait([socket.future])
        assert_released(execution_id, user.pk)
