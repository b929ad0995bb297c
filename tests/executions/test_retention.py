"""Retention: old finished executions go with their events and node rows; live ones stay."""

import io
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from executions.maintenance import prune_in_background
from executions.models import Execution, ExecutionEvent, ExecutionStatus, NodeRun
from executions.services import retention
from executions.services.retention import executions_prune, executions_prune_when_due
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = 3
NODES = 2


@pytest.fixture
def workflow(user):
    return make_workflow(user)


def make_run(
    workflow, status: str, *, days_ago: float, finished: bool = True, events: int = EVENTS
) -> Execution:
    """An execution that was created, and (``finished``) ended, ``days_ago`` days ago."""
    moment = timezone.now() - timedelta(days=days_ago)
    execution = Execution.objects.create(
        workflow=workflow,
        owner=workflow.owner,
        definition=workflow.definition,
        status=status,
        finished_at=moment if finished else None,
        last_seq=events,
    )
    Execution.objects.filter(pk=execution.pk).update(created_at=moment)
    ExecutionEvent.objects.bulk_create(
        ExecutionEvent(execution=execution, seq=seq, type="log", data={}, created_at=moment)
        for seq in range(1, events + 1)
    )
    NodeRun.objects.bulk_create(
        NodeRun(execution=execution, node_id=f"n{n}", node_type="delay", position=n)
        for n in range(NODES)
    )
    return execution


def remaining() -> set:
    return set(Execution.objects.values_list("pk", flat=True))


def children_of(ids) -> tuple[int, int]:
    return (
        ExecutionEvent.objects.filter(execution_id__in=ids).count(),
        NodeRun.objects.filter(execution_id__in=ids).count(),
    )


@pytest.fixture
def runs(workflow):
    """Old finished runs, a recent one, and old live ones (one even with a stale finished_at)."""
    return {
        "old": [
            make_run(workflow, status, days_ago=40)
            for status in (
                ExecutionStatus.COMPLETED,
                ExecutionStatus.FAILED,
                ExecutionStatus.CANCELLED,
            )
        ],
        "recent": [make_run(workflow, ExecutionStatus.COMPLETED, days_ago=10)],
        "live": [
            make_run(workflow, ExecutionStatus.PENDING, days_ago=400, finished=False),
            make_run(workflow, ExecutionStatus.RUNNING, days_ago=400, finished=False),
            # Run again after a lost runner, say: its status is what counts.
            make_run(workflow, ExecutionStatus.RUNNING, days_ago=400),
        ],
    }


def ids(executions) -> set:
    return {e.pk for e in executions}


def test_old_finished_executions_go_with_their_events_and_nodes(runs):
    kept = ids(runs["recent"]) | ids(runs["live"])

    counts = executions_prune()

    assert remaining() == kept
    assert children_of(ids(runs["old"])) == (0, 0)
    assert children_of(kept) == (EVENTS * len(kept), NODES * len(kept))
    assert counts["executions"] == 3
    assert counts["events"] == 3 * EVENTS
    assert counts["node_runs"] == 3 * NODES


def test_a_live_execution_is_kept_at_any_age(runs):
    executions_prune(older_than_days=0.001)

    assert remaining() == ids(runs["live"])
    assert children_of(ids(runs["live"])) == (EVENTS * 3, NODES * 3)


@override_settings(EXECUTIONS_RETENTION_DAYS=0)
def test_zero_days_keeps_every_execution(runs):
    counts = executions_prune()

    assert len(remaining()) == 7
    assert (counts["executions"], counts["events"], counts["node_runs"]) == (0, 0, 0)


def test_the_days_come_from_the_setting(runs):
    with override_settings(EXECUTIONS_RETENTION_DAYS=50):
        executions_prune()
    assert len(remaining()) == 7

    with override_settings(EXECUTIONS_RETENTION_DAYS=5):
        executions_prune()
    assert remaining() == ids(runs["live"])


def test_the_command_deletes_and_says_what(runs):
    out = io.StringIO()

    call_command("prune_executions", "--older-than", "20", stdout=out)

    assert remaining() == ids(runs["recent"]) | ids(runs["live"])
    assert out.getvalue().strip() == (
        f"Deleted: 3 executions, {3 * EVENTS} events, {3 * NODES} node rows, 0 sessions, 0 tickets"
    )


def test_a_dry_run_deletes_nothing_and_counts_what_it_would(runs):
    expired_session()
    out = io.StringIO()

    call_command("prune_executions", "--dry-run", "--older-than", "5", stdout=out)

    assert len(remaining()) == 7
    assert ExecutionEvent.objects.count() == 7 * EVENTS
    assert Session.objects.count() == 1
    assert out.getvalue().strip() == (
        f"Would delete: 4 executions, {4 * EVENTS} events, {4 * NODES} node rows, "
        "1 sessions, 0 tickets"
    )


def test_the_command_refuses_negative_days(runs):
    with pytest.raises(Exception, match="give 0 or more days"):
        call_command("prune_executions", "--older-than", "-1")
    assert len(remaining()) == 7


def deletes_by_table() -> tuple[dict, list]:
    """A query wrapper that records (table, rows deleted, transactions open) per DELETE."""
    seen = []

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith("DELETE"):
            table = sql.split('"')[1] if '"' in sql else sql.split()[2]
            # Blocks open around it: 1 is the delete's own transaction, more an outer one.
            seen.append((table, context["cursor"].rowcount, len(connection.atomic_blocks)))
        return result

    return wrapper, seen


@override_settings(EXECUTIONS_RETENTION_BATCH=4)
def test_a_large_prune_deletes_in_small_statements_of_their_own(workflow, monkeypatch):
    for _ in range(5):
        make_run(workflow, ExecutionStatus.COMPLETED, days_ago=40, events=2)
    make_run(workflow, ExecutionStatus.COMPLETED, days_ago=40, events=10)
    wrapper, seen = deletes_by_table()
    commits = []
    commit = connection.commit
    monkeypatch.setattr(connection, "commit", lambda: commits.append(1) or commit())

    with connection.execute_wrapper(wrapper):
        counts = executions_prune()

    assert remaining() == set()
    assert (counts["executions"], counts["events"], counts["node_runs"]) == (6, 20, 12)
    events = [rows for table, rows, _ in seen if table.endswith("executionevent") and rows]
    nodes = [rows for table, rows, _ in seen if table.endswith("noderun") and rows]
    executions = [rows for table, rows, _ in seen if table.endswith("execution") and rows]
    # At most 4 rows a statement: two short logs together (with their nodes and
    # executions), the long one 4 seqs at a time.
    assert sum(events) == 20
    assert max(events) == 4
    assert len(events) >= 6
    assert sum(nodes) == 12
    assert max(nodes) <= 4
    assert sum(executions) == 6
    assert max(executions) <= 4
    # Each statement is its own transaction, committed before the next.
    assert all(depth <= 1 for _, _, depth in seen)
    assert len(commits) >= len(events) + len(nodes) + len(executions)


def expired_session() -> str:
    store = SessionStore()
    store["user"] = "someone"
    store.set_expiry(-60)
    store.create()
    return store.session_key


def live_session() -> str:
    store = SessionStore()
    store["user"] = "someone"
    store.create()
    return store.session_key


def test_expired_sessions_go_and_live_ones_stay():
    expired_session()
    live = live_session()

    counts = executions_prune()

    assert list(Session.objects.values_list("session_key", flat=True)) == [live]
    assert counts["sessions"] == 1


@pytest.fixture
def due():
    cache.delete(retention.DUE_KEY)
    with override_settings(EXECUTIONS_RETENTION_INTERVAL=3600):
        yield
    cache.delete(retention.DUE_KEY)


def test_the_maintenance_prune_runs_once_per_interval(due, workflow):
    first = make_run(workflow, ExecutionStatus.COMPLETED, days_ago=40)
    assert executions_prune_when_due()["executions"] == 1

    second = make_run(workflow, ExecutionStatus.COMPLETED, days_ago=40)
    assert executions_prune_when_due() is None

    assert remaining() == {second.pk}
    assert not Execution.objects.filter(pk=first.pk).exists()


def test_the_maintenance_prune_is_off_at_interval_zero(workflow):
    make_run(workflow, ExecutionStatus.COMPLETED, days_ago=40)

    with override_settings(EXECUTIONS_RETENTION_INTERVAL=0):
        assert executions_prune_when_due() is None
    assert len(remaining()) == 1


def test_a_prune_is_skipped_while_another_process_prunes(due, workflow):
    make_run(workflow, ExecutionStatus.COMPLETED, days_ago=40)

    with held_elsewhere():
        assert executions_prune_when_due() is None

    assert len(remaining()) == 1


class held_elsewhere:
    """Takes the prune's lock as another process would: PostgreSQL's advisory lock
    from a connection of its own, or this process's lock on other databases."""

    def __enter__(self):
        if connection.vendor != "postgresql":
            retention._local_lock.acquire()
            return self
        import psycopg

        settings = connection.settings_dict
        self.other = psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"],
            password=settings["PASSWORD"],
            host=settings["HOST"],
            port=settings["PORT"] or 5432,
            autocommit=True,
        )
        self.other.execute("SELECT pg_advisory_lock(%s)", [retention.ADVISORY_LOCK_ID])
        return self

    def __exit__(self, *exc):
        if connection.vendor != "postgresql":
            retention._local_lock.release()
        else:
            self.other.close()


async def test_the_maintenance_loop_prunes_in_a_thread_of_its_own(due, workflow):
    from channels.db import database_sync_to_async

    old = await database_sync_to_async(make_run)(workflow, "completed", days_ago=40)
    recent = await database_sync_to_async(make_run)(workflow, "completed", days_ago=1)

    await prune_in_background()

    assert await database_sync_to_async(remaining)() == {recent.pk}
    assert await database_sync_to_async(children_of)([old.pk]) == (0, 0)


async def test_the_reaper_does_not_wait_for_a_prune_and_prunes_do_not_pile_up(monkeypatch):
    import threading

    from executions import maintenance

    started, release, calls = threading.Event(), threading.Event(), []

    def slow_prune():
        calls.append(1)
        started.set()
        release.wait(10)

    monkeypatch.setattr(maintenance, "executions_prune_when_due", slow_prune)
    await maintenance.maintain_once()
    running = maintenance.prune_in_background()
    started.wait(10)

    await maintenance.maintain_once()

    assert not running.done()
    assert calls == [1]
    release.set()
    await running
