"""The executions feed's data: marks on every change, states, filters and reads.

These run on SQLite and on PostgreSQL, committed (``transaction=True``), since
a feed cursor is about what has committed. On PostgreSQL a read may return
executions again that were marked between the cursor and the read (any
session's open transaction holds the cursor back), so exact sets are checked
against the marks: a read returns exactly the matching rows marked at or after
its cursor.
"""

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import checks
from django.db import connection
from django.test.utils import CaptureQueriesContext

from executions import services
from executions.exceptions import FeedCursorInvalid
from executions.feed import (
    FeedFilter,
    _cursor_decode,
    executions_for_feed,
    feed_filter,
    feed_read,
    feed_state,
)
from executions.models import Execution
from tests.factories import make_execution, make_workflow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]

EVERYTHING = FeedFilter()


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    """The events' pushes are not what these tests are about."""
    monkeypatch.setattr("realtime.signals.publish_many", lambda messages: None)


def mark_of(execution: Execution) -> int:
    return Execution.objects.values_list("feed_mark", flat=True).get(id=execution.id)


def ids(states: list[dict]) -> list[str]:
    return [state["id"] for state in states]


def marked_since(cursor: str, among: list[Execution]) -> set[str]:
    """Which of ``among`` a read with ``cursor`` must return: those marked at or after it."""
    floor = _cursor_decode(cursor).floor
    return {str(e.id) for e in among if mark_of(e) >= floor}


def test_every_change_of_state_moves_the_mark_and_other_writes_do_not(user):
    execution = make_execution(user)
    created = mark_of(execution)
    services.execution_start(execution_id=execution.id)
    started = mark_of(execution)
    services.execution_log(execution_id=execution.id, node_id=None, level="info", message="x")
    services.executions_lease_renew(claim_tokens=[Execution.objects.get().claim_token])
    logged = mark_of(execution)
    Execution.objects.filter(id=execution.id).update(progress=40)  # bypassing the services
    updated = mark_of(execution)
    services.execution_complete(execution_id=execution.id, result=1)
    completed = mark_of(execution)

    assert 0 < created < started == logged < updated < completed


def test_a_mark_written_from_outside_is_ignored(user):
    execution = make_execution(user)
    mark = mark_of(execution)

    Execution.objects.filter(id=execution.id).update(feed_mark=1)
    stale = Execution.objects.get(id=execution.id)
    stale.feed_mark = 2
    stale.save()

    assert mark_of(execution) == mark


def test_the_mark_triggers_exist_on_this_database():
    # A later migration that remakes the table on SQLite would drop them.
    if connection.vendor == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s"
    else:
        sql = "SELECT tgname FROM pg_trigger WHERE tgname LIKE %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, ["executions_feed_mark%"])
        names = {row[0] for row in cursor.fetchall()}

    expected = {"executions_feed_mark_insert", "executions_feed_mark_update"}
    if connection.vendor == "sqlite":
        expected.add("executions_feed_mark_keep")
    assert names == expected


def test_feed_state_is_the_feeds_fields_read_in_one_query(user):
    workflow = make_workflow(user, name="nightly-report")
    execution = services.execution_create(
        owner=user, workflow=workflow, input_data={}, tags=["nightly"]
    )
    services.execution_start(execution_id=execution.id)
    services.execution_complete(execution_id=execution.id, result={"big": "x" * 1000})

    with CaptureQueriesContext(connection) as queries:
        state = feed_state(executions_for_feed().get(id=execution.id))

    assert len(queries.captured_queries) == 1
    assert '"result"' not in queries.captured_queries[0]["sql"]
    stored = Execution.objects.get(id=execution.id)
    assert state == {
        "id": str(execution.id),
        "workflow_id": str(workflow.id),
        "workflow_name": "nightly-report",
        "status": "completed",
        "progress": 100,
        "message": stored.message,
        "execution_time": stored.execution_time,
        "created_at": stored.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "started_at": stored.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "finished_at": stored.finished_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tags": ["nightly"],
        "last_seq": stored.last_seq,
    }
    pending = feed_state(executions_for_feed().get(id=make_execution(user, workflow).id))
    assert (pending["started_at"], pending["finished_at"], pending["execution_time"]) == (
        None,
        None,
        None,
    )


def test_a_valid_filter_is_read_and_an_empty_one_matches_everything():
    workflow_id = uuid.uuid4()

    assert feed_filter({}) == (EVERYTHING, None)
    assert feed_filter(None) == (EVERYTHING, None)
    assert feed_filter({"workflow_id": None, "status": None, "tag": None}) == (EVERYTHING, None)
    assert feed_filter(
        {"workflow_id": str(workflow_id), "status": ["running", "pending"], "tag": "nightly"}
    ) == (FeedFilter(workflow_id, frozenset({"running", "pending"}), "nightly"), None)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ([], "The filter must be an object, not list."),
        ({"owner": 1}, "Unknown filter key 'owner': a feed filters on workflow_id, status and tag"),
        ({"workflow_id": "nope"}, "workflow_id must be a workflow's id (a UUID string)"),
        ({"workflow_id": 5}, "workflow_id must be a workflow's id (a UUID string), not 5"),
        ({"status": "running"}, "status must be a non-empty list of statuses among pending,"),
        ({"status": []}, "status must be a non-empty list"),
        ({"status": ["running", "done"]}, "status 'done' is not one of pending, running,"),
        ({"tag": ""}, "tag is 0 characters long; a tag is 1 to 64 characters."),
        ({"tag": 3}, "tag must be a string of 1 to 64 characters, not int."),
    ],
)
def test_an_invalid_filter_says_what_is_wrong(raw, says):
    parsed, error = feed_filter(raw)

    assert parsed is None
    assert says in error


def test_without_a_cursor_the_newest_matching_executions_come_newest_first(user, settings):
    settings.REALTIME_FEED_BACKLOG = 3
    workflow = make_workflow(user)
    executions = [make_execution(user, workflow) for _ in range(5)]

    page = feed_read(user, EVERYTHING)

    assert ids(page.states) == [str(e.id) for e in reversed(executions[2:])]
    assert not page.more


def test_the_feed_keeps_to_what_the_user_may_see(user, other_user, staff_user):
    mine = make_execution(user)
    theirs = make_execution(other_user)

    assert ids(feed_read(user, EVERYTHING).states) == [str(mine.id)]
    assert set(ids(feed_read(staff_user, EVERYTHING).states)) == {str(mine.id), str(theirs.id)}
    assert feed_read(AnonymousUser(), EVERYTHING).states == []


def test_filters_pick_by_workflow_status_and_tag(user):
    report, ingest = make_workflow(user, name="report"), make_workflow(user, name="ingest")
    tagged = services.execution_create(owner=user, workflow=report, input_data={}, tags=["a"])
    running = make_execution(user, ingest)
    services.execution_start(execution_id=running.id)
    pending = make_execution(user, ingest)

    def read(**raw) -> set[str]:
        parsed, error = feed_filter(raw)
        assert error is None
        return set(ids(feed_read(user, parsed).states))

    assert read(workflow_id=str(report.id)) == {str(tagged.id)}
    assert read(status=["running"]) == {str(running.id)}
    assert read(status=["pending"], workflow_id=str(ingest.id)) == {str(pending.id)}
    assert read(tag="a") == {str(tagged.id)}
    assert read(tag="b") == set()


def test_with_a_cursor_the_executions_changed_after_it_come_in_their_current_state(user):
    workflow = make_workflow(user)
    still, moved, finished = (make_execution(user, workflow) for _ in range(3))
    cursor = feed_read(user, EVERYTHING).cursor
    services.execution_start(execution_id=moved.id)
    services.execution_start(execution_id=finished.id)
    services.execution_complete(execution_id=finished.id, result=None)
    new = make_execution(user, workflow)

    page = feed_read(user, EVERYTHING, cursor)

    returned = {state["id"]: state for state in page.states}
    assert {str(moved.id), str(finished.id), str(new.id)} <= set(returned)
    assert set(returned) == marked_since(cursor, [still, moved, finished, new])
    if connection.vendor == "sqlite":
        assert str(still.id) not in returned  # its mark is older than the cursor
    assert returned[str(moved.id)]["status"] == "running"
    assert returned[str(finished.id)]["status"] == "completed"
    assert returned[str(new.id)]["status"] == "pending"
    assert not page.more


def test_the_filter_applies_to_changes_too(user):
    workflow = make_workflow(user)
    watched = services.execution_create(owner=user, workflow=workflow, input_data={}, tags=["w"])
    other = make_execution(user, workflow)
    cursor = feed_read(user, FeedFilter(tag="w")).cursor
    services.execution_start(execution_id=watched.id)
    services.execution_start(execution_id=other.id)

    page = feed_read(user, FeedFilter(tag="w"), cursor)

    assert ids(page.states) == [str(watched.id)]


def test_a_read_of_many_changes_comes_in_pages_that_miss_none(user):
    workflow = make_workflow(user)
    executions = [make_execution(user, workflow) for _ in range(7)]
    cursor = feed_read(user, EVERYTHING).cursor
    for execution in executions:
        services.execution_start(execution_id=execution.id)
    expected = marked_since(cursor, executions)

    seen, pages = [], 0
    page = feed_read(user, EVERYTHING, cursor, limit=3)
    seen += ids(page.states)
    # A change during the read: after the rows already read.
    services.execution_progress(execution_id=executions[0].id, progress=50)
    while page.more:
        page = feed_read(user, EVERYTHING, page.cursor, limit=3)
        seen += ids(page.states)
        pages += 1
        assert len(page.states) <= 3
    final = feed_read(user, EVERYTHING, page.cursor)

    assert pages >= 2
    assert set(seen) == expected
    # The change made while the pages were read comes with the next read, at latest.
    assert str(executions[0].id) in ids(final.states)
    assert {s["progress"] for s in final.states if s["id"] == str(executions[0].id)} == {50}


def test_after_the_last_page_nothing_changed_comes_again_but_as_it_was(user):
    executions = [make_execution(user) for _ in range(4)]
    cursor = feed_read(user, EVERYTHING).cursor
    for execution in executions:
        services.execution_start(execution_id=execution.id)

    first = feed_read(user, EVERYTHING, cursor, limit=2)
    second = feed_read(user, EVERYTHING, first.cursor, limit=2)
    third = feed_read(user, EVERYTHING, second.cursor, limit=2)
    again = feed_read(user, EVERYTHING, third.cursor)

    assert (first.more, len(first.states)) == (True, 2)
    assert len(second.states) == 2
    seen = {s["id"]: s for s in first.states + second.states}
    assert set(seen) == {str(e.id) for e in executions}
    if connection.vendor == "sqlite":
        # Writers take turns: the cursor is exact.
        assert third.states == [] and not third.more
        assert again.states == []
    # PostgreSQL: a transaction open anywhere holds the cursor back, so a state
    # may come again, but only as it was: nothing changed.
    for state in third.states + again.states:
        assert state == seen[state["id"]]


def test_a_read_is_two_statements(user):
    make_execution(user)
    cursor = feed_read(user, EVERYTHING).cursor

    with CaptureQueriesContext(connection) as queries:
        feed_read(user, FeedFilter(tag="x"), cursor)

    # The cursor, then the rows with their workflows' names.
    assert len(queries.captured_queries) == 2


@pytest.mark.parametrize(
    "cursor",
    ["", "nonsense", "pg:", "sl:12:x", "pg:1:2:zz", 12, "pg:1 ", "sl:-1", "mysql:1"],
)
def test_a_malformed_cursor_is_refused_with_a_clear_error(user, cursor):
    with pytest.raises(FeedCursorInvalid, match="malformed"):
        feed_read(user, EVERYTHING, cursor)


def test_a_cursor_of_another_kind_of_database_is_refused(user):
    other = "pg:5" if connection.vendor == "sqlite" else "sl:5"

    with pytest.raises(FeedCursorInvalid, match="another kind of database"):
        feed_read(user, EVERYTHING, other)


def test_a_cursor_ahead_of_this_database_is_refused(user):
    kind = feed_read(user, EVERYTHING).cursor.split(":")[0]

    with pytest.raises(FeedCursorInvalid, match="not given out by this database"):
        feed_read(user, EVERYTHING, f"{kind}:9000000000000000000")
    with pytest.raises(FeedCursorInvalid, match="not given out by this database"):
        feed_read(user, EVERYTHING, f"{kind}:1:9000000000000000000:{uuid.uuid4().hex}")


@pytest.mark.parametrize("limit", [0, 1001])
def test_a_page_size_out_of_bounds_is_refused_before_any_query(user, limit):
    with (
        CaptureQueriesContext(connection) as queries,
        pytest.raises(ValueError, match="read 1 to 1000"),
    ):
        feed_read(user, EVERYTHING, limit=limit)

    assert queries.captured_queries == []


@pytest.mark.parametrize(("backlog", "errors"), [(50, 0), (0, 0), (1000, 0), (-1, 1), (1001, 1)])
def test_a_backlog_the_feed_cannot_send_is_a_system_check_error(settings, backlog, errors):
    settings.REALTIME_FEED_BACKLOG = backlog

    found = [e for e in checks.run_checks() if e.id == "executions.E120"]

    assert len(found) == errors
