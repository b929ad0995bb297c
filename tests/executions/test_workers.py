"""Processes and their heartbeats: registered, alive or gone by the database's clock,
what each runs and how it keeps its leases, pruned; and each run of an execution
with the process that ran it."""

import time
import uuid
from datetime import timedelta

import pytest
from django.core import checks
from django.db.models import F
from django.test import override_settings

from executions import selectors, services
from executions.clock import database_now
from executions.heartbeat import Heartbeat, check_heartbeat_settings
from executions.models import Execution, ExecutionRun, Worker, WorkerKind
from executions.services.workers import (
    WorkerIdentity,
    worker_heartbeat,
    worker_register,
    worker_stop,
    workers_prune,
)
from tests.clock import process_clock_off_by
from tests.conftest import bearer_client
from tests.factories import chain, make_execution, make_user, make_workflow, node

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def identity(name: str = "host-a:100", kind: str = WorkerKind.WORKER) -> WorkerIdentity:
    host, pid = name.split(":")
    return WorkerIdentity(
        id=uuid.uuid4(),
        name=name,
        kind=kind,
        host=host,
        pid=int(pid),
        version="1.2.3",
        runs_executions=kind == WorkerKind.WORKER,
    )


def seen_ago(worker_id, seconds: float) -> None:
    """Date the process's latest heartbeat ``seconds`` before the database's now."""
    Worker.objects.filter(id=worker_id).update(
        last_seen_at=database_now() - timedelta(seconds=seconds)
    )


def overview_by_name() -> dict[str, selectors.WorkerRead]:
    return {read.worker.name: read for read in selectors.workers_overview()}


def running_on(name: str, **lease) -> Execution:
    """A running execution claimed by ``name``, with its lease ``lease`` from now."""
    user = make_user()
    execution = make_execution(user, make_workflow(user, name=f"flow of {name}"))
    services.execution_start(execution_id=execution.id, runner=name)
    Execution.objects.filter(id=execution.id).update(
        lease_expires_at=database_now() + timedelta(**lease)
    )
    return execution


# --- heartbeats -------------------------------------------------------------------


def test_a_heartbeat_stores_the_process_then_moves_its_last_seen_by_the_database_clock():
    me = identity()

    with process_clock_off_by(-3600):  # this process's clock an hour behind
        worker_heartbeat(identity=me, executions_running=2)
        first = Worker.objects.get(id=me.id)
        seen_ago(me.id, 30)
        worker_heartbeat(identity=me, executions_running=5)
    again = Worker.objects.get(id=me.id)

    assert (first.name, first.kind, first.host, first.pid) == (
        "host-a:100",
        "worker",
        "host-a",
        100,
    )
    assert (first.version, first.executions_running, first.stopped_at) == ("1.2.3", 2, None)
    assert abs((first.started_at - database_now()).total_seconds()) < 5
    assert again.started_at == first.started_at
    assert again.executions_running == 5
    assert abs((again.last_seen_at - database_now()).total_seconds()) < 5
    assert overview_by_name()["host-a:100"].alive


def test_a_process_is_gone_once_its_last_heartbeat_is_older_than_the_timeout():
    fresh, quiet = identity("z:1"), identity("a:1")
    worker_register(identity=fresh)
    worker_register(identity=quiet)

    with override_settings(WORKERS_TIMEOUT_SECONDS=10):
        seen_ago(fresh.id, 9)
        seen_ago(quiet.id, 11)
        listed = selectors.workers_overview()

    reads = {read.worker.name: read for read in listed}
    assert reads["z:1"].alive and not reads["a:1"].alive
    assert 9 <= reads["z:1"].seen_ago < 10 and 11 <= reads["a:1"].seen_ago < 12
    # The live ones come first, whatever their names.
    assert [read.worker.name for read in listed] == ["z:1", "a:1"]


def test_a_stopped_process_is_gone_at_once_and_a_later_heartbeat_brings_it_back():
    me = identity()
    worker_register(identity=me, executions_running=3)

    worker_stop(worker_id=me.id)
    stopped = Worker.objects.get(id=me.id)
    gone = overview_by_name()["host-a:100"]
    worker_heartbeat(identity=me, executions_running=1)

    assert stopped.stopped_at is not None and stopped.executions_running == 0
    assert not gone.alive
    assert overview_by_name()["host-a:100"].alive


def test_pruning_deletes_only_the_rows_not_heard_of_for_the_retention(user):
    old, recent = identity("h:1"), identity("h:2")
    worker_register(identity=old)
    worker_register(identity=recent)
    seen_ago(old.id, 3 * 3600 + 60)
    seen_ago(recent.id, 3 * 3600 - 60)

    assert workers_prune(older_than_hours=0) == 0  # 0 keeps them all
    assert workers_prune(older_than_hours=3) == 1
    assert list(Worker.objects.values_list("name", flat=True)) == ["h:2"]


def test_a_pruned_process_that_beats_again_is_stored_again():
    me = identity()
    worker_register(identity=me)
    Worker.objects.all().delete()

    worker_heartbeat(identity=me, executions_running=0)

    assert Worker.objects.get().id == me.id


def test_the_heartbeat_owner_registers_beats_and_marks_its_row_stopped(monkeypatch):
    beat = Heartbeat()
    monkeypatch.setattr(beat, "_beat_forever", lambda: None)  # no thread writing meanwhile
    beat.start(kind=WorkerKind.SERVER, runs_executions=False, running=lambda: 7)
    row_id = beat.worker_id

    beat.beat()
    row = Worker.objects.get(id=row_id)
    beat.stop()

    assert (row.kind, row.runs_executions, row.executions_running) == ("server", False, 7)
    assert row.name.endswith(f":{row.pid}") and row.version
    assert beat.worker_id is None
    assert Worker.objects.get(id=row_id).stopped_at is not None


def test_each_beat_also_prunes_long_gone_processes():
    beat = Heartbeat()
    beat.identity = identity("h:1")
    gone = identity("h:2")
    worker_register(identity=gone)
    seen_ago(gone.id, 48 * 3600)

    with override_settings(WORKERS_RETENTION_HOURS=24):
        beat.beat()

    assert list(Worker.objects.values_list("name", flat=True)) == ["h:1"]


# --- what each runs ---------------------------------------------------------------


def test_each_process_lists_the_executions_claimed_in_its_name():
    worker_register(identity=identity("h:1"))
    worker_register(identity=identity("h:2"))
    first = running_on("h:1", seconds=30)
    second = running_on("h:1", seconds=30)
    running_on("elsewhere:9", seconds=30)

    reads = overview_by_name()

    assert reads["h:1"].claimed == 2
    assert [e.id for e in reads["h:1"].executions] == [first.id, second.id]
    assert reads["h:1"].executions[0].workflow_name == "flow of h:1"
    assert (reads["h:2"].claimed, reads["h:2"].executions, reads["h:2"].lease_health) == (
        0,
        [],
        None,
    )


@override_settings(EXECUTIONS_LEASE_SECONDS=30)
@pytest.mark.parametrize(
    ("remaining", "health"),
    [(29, selectors.LeaseHealth.OK), (15, selectors.LeaseHealth.LATE), (-1, "expired")],
)
def test_lease_health_follows_the_least_recently_renewed_lease(remaining, health):
    worker_register(identity=identity("h:1"))
    running_on("h:1", seconds=29)
    running_on("h:1", seconds=remaining)

    read = overview_by_name()["h:1"]

    assert read.lease_health == health
    assert read.stalest_renewal == pytest.approx(30 - remaining, abs=2)


def test_a_name_used_again_gives_its_claims_to_its_newest_row():
    older, newer = identity("h:1"), identity("h:1")
    worker_register(identity=older)
    worker_register(identity=newer)
    Worker.objects.filter(id=older.id).update(started_at=F("started_at") - timedelta(hours=1))
    running_on("h:1", seconds=30)

    claims = {read.worker.id: read.claimed for read in selectors.workers_overview()}

    assert claims == {older.id: 0, newer.id: 1}


def test_the_executions_listed_per_process_are_bounded_and_their_count_is_whole(monkeypatch):
    monkeypatch.setattr(selectors, "EXECUTIONS_SHOWN_PER_WORKER", 2)
    worker_register(identity=identity("h:1"))
    for _ in range(3):
        running_on("h:1", seconds=30)

    read = overview_by_name()["h:1"]

    assert (read.claimed, len(read.executions)) == (3, 2)


# --- each run of an execution ---------------------------------------------------


def test_a_claim_records_the_run_with_its_process():
    me = identity("h:1")
    worker_register(identity=me)
    execution = make_execution(make_user())

    services.execution_start(execution_id=execution.id, runner="h:1", worker_id=me.id)

    run = ExecutionRun.objects.get(execution=execution)
    assert (run.number, run.worker_id, run.worker_name) == (1, me.id, "h:1")
    assert run.started_at == Execution.objects.get(id=execution.id).started_at
    [read] = selectors.execution_runs(Execution.objects.get(id=execution.id))
    assert (read.worker_alive, read.ended_at, read.outcome) == (True, None, None)


def test_a_run_sent_back_ends_there_and_the_last_run_ends_with_the_execution():
    user = make_user()
    workflow = make_workflow(user, chain(node("wait", "delay", seconds=0)))
    workflow.retry_on_worker_loss = True
    workflow.save()
    execution = make_execution(user, workflow)
    services.execution_start(execution_id=execution.id, runner="h:1")
    Execution.objects.filter(id=execution.id).update(
        lease_expires_at=database_now() - timedelta(seconds=1)
    )
    services.execution_interrupt(execution_id=execution.id, reason="Runner h:1 went quiet")
    services.execution_start(execution_id=execution.id, runner="h:2")
    done = services.execution_complete(execution_id=execution.id, result=1)

    first, second = selectors.execution_runs(done)

    assert (first.number, first.worker_name, first.outcome) == (1, "h:1", "requeued")
    assert first.reason == "Runner h:1 went quiet" and first.ended_at is not None
    assert (second.number, second.worker_name, second.outcome) == (2, "h:2", "completed")
    assert second.ended_at == done.finished_at
    assert not first.worker_alive and first.worker_id is None  # no process row for h:1


def test_the_execution_detail_lists_its_runs(api, user):
    me = identity("h:1")
    worker_register(identity=me)
    execution = make_execution(user)
    services.execution_start(execution_id=execution.id, runner="h:1", worker_id=me.id)
    services.execution_fail(execution_id=execution.id, error="broke")

    runs = api.get(f"/api/v1/executions/{execution.id}").json()["runs"]

    [run] = runs
    assert set(run) == {
        "number",
        "worker",
        "worker_id",
        "worker_alive",
        "started_at",
        "ended_at",
        "outcome",
        "reason",
    }
    assert (run["number"], run["worker"], run["worker_id"]) == (1, "h:1", str(me.id))
    assert (run["outcome"], run["worker_alive"], run["reason"]) == ("failed", True, "")
    assert run["ended_at"] is not None


# --- REST -------------------------------------------------------------------------


def test_the_workers_endpoint_is_for_staff(user, staff_user):
    assert bearer_client(user).get("/api/v1/workers").status_code == 403
    assert bearer_client(staff_user).get("/api/v1/workers").status_code == 200


@override_settings(WORKERS_HEARTBEAT_SECONDS=2, WORKERS_TIMEOUT_SECONDS=8)
def test_the_workers_endpoint_describes_each_process(staff_user):
    me = identity("h:1")
    worker_register(identity=me, executions_running=1)
    execution = running_on("h:1", seconds=30)
    server = identity("h:2", kind=WorkerKind.SERVER)
    worker_register(identity=server)
    worker_stop(worker_id=server.id)

    body = bearer_client(staff_user).get("/api/v1/workers/").json()

    assert (body["heartbeat_seconds"], body["timeout_seconds"]) == (2, 8)
    worker, gone = body["results"]
    assert (worker["name"], worker["kind"], worker["state"]) == ("h:1", "worker", "alive")
    assert (worker["executions_running"], worker["claimed"], worker["lease_health"]) == (1, 1, "ok")
    assert [e["id"] for e in worker["executions"]] == [str(execution.id)]
    assert (gone["name"], gone["state"], gone["runs_executions"]) == ("h:2", "gone", False)
    assert gone["stopped_at"] is not None


# --- settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"WORKERS_HEARTBEAT_SECONDS": 0},
        {"WORKERS_HEARTBEAT_SECONDS": 5, "WORKERS_TIMEOUT_SECONDS": 5},
        {"WORKERS_RETENTION_HOURS": -1},
    ],
)
def test_settings_that_cannot_tell_alive_from_gone_fail_the_checks(values):
    with override_settings(**values):
        errors = check_heartbeat_settings()

    assert [error.id for error in errors] == ["executions.E150"]
    assert next(iter(values)) in errors[0].msg
    assert "default" in errors[0].msg


def test_the_default_settings_pass_the_checks():
    assert check_heartbeat_settings() == []
    assert not [e for e in checks.run_checks() if e.id == "executions.E150"]


@pytest.mark.django_db(transaction=True)
@override_settings(WORKERS_HEARTBEAT_SECONDS=0.05)
def test_the_heartbeat_thread_keeps_the_row_fresh_until_stopped():
    running = iter(range(1, 1000))
    beat = Heartbeat()
    beat.start(kind=WorkerKind.WORKER, runs_executions=True, running=lambda: next(running))
    row_id = beat.worker_id
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = Worker.objects.filter(id=row_id).first()
            if row is not None and row.executions_running >= 3:  # three beats at least
                break
            time.sleep(0.02)
    finally:
        beat.stop()

    assert row is not None and row.executions_running >= 3
    assert Worker.objects.get(id=row_id).stopped_at is not None
    assert beat._thread is None
