"""``manage.py status``: the processes, the broker's queue and the executions, as a
table or as JSON."""

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings

from executions import services
from executions.clock import database_now
from executions.models import Execution, Worker, WorkerKind
from executions.runners import get_runner
from executions.services.workers import WorkerIdentity, worker_register, worker_stop
from tests.factories import make_execution, make_user, make_workflow

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def status(*args: str) -> str:
    out = io.StringIO()
    call_command("status", *args, stdout=out)
    return out.getvalue()


def register(name: str, kind: str = WorkerKind.WORKER, **fields) -> Worker:
    host, pid = name.split(":")
    identity = WorkerIdentity(
        id=uuid.uuid4(),
        name=name,
        kind=kind,
        host=host,
        pid=int(pid),
        version="1.2.3",
        runs_executions=kind == WorkerKind.WORKER,
    )
    return worker_register(identity=identity, **fields)


@pytest.fixture
def service():
    """A live worker running one execution, a stopped server, a worker that went
    quiet, two pending executions (the older ten minutes old) and a completed one."""
    user = make_user()
    workflow = make_workflow(user, name="nightly")
    register("box:10", executions_running=1)
    worker_stop(worker_id=register("box:20", kind=WorkerKind.SERVER).id)
    quiet = register("box:30")
    Worker.objects.filter(id=quiet.id).update(last_seen_at=database_now() - timedelta(seconds=60))
    running = make_execution(user, workflow)
    services.execution_start(execution_id=running.id, runner="box:10")
    oldest = make_execution(user, workflow)
    Execution.objects.filter(id=oldest.id).update(created_at=database_now() - timedelta(minutes=10))
    make_execution(user, workflow)
    done = make_execution(user, workflow)
    services.execution_start(execution_id=done.id, runner="box:10")
    services.execution_complete(execution_id=done.id, result=1)
    return oldest


@override_settings(WORKERS_HEARTBEAT_SECONDS=5, WORKERS_TIMEOUT_SECONDS=20)
def test_status_prints_the_processes_the_broker_and_the_executions(service):
    text = status()

    lines = text.splitlines()
    assert lines[0] == "Processes (a heartbeat every 5 s; gone after 20 s without one)"
    heading = lines[1].split()
    assert heading[:3] == ["NAME", "KIND", "STATE"]
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert list(rows) == ["box:10", "box:20", "box:30"]  # the live one first
    assert rows["box:10"][1:6] == ["worker", "alive", "1", "1", "ok"]
    assert rows["box:20"][1:6] == ["server", "stopped", "-", "-", "-"]
    assert rows["box:30"][1:3] == ["worker", "gone"]
    assert "60." in rows["box:30"][6] or "61." in rows["box:30"][6]
    assert "Broker: none; executions run in the server process (EXECUTIONS_RUNNER=inprocess)" in (
        lines
    )
    assert "Executions: 2 pending, 1 running, 1 completed, 0 failed, 0 cancelled" in lines
    oldest = next(line for line in lines if line.startswith("Oldest pending: "))
    assert f"{service.id} (nightly)" in oldest
    assert "waiting 600." in oldest or "waiting 601." in oldest


def test_status_json_carries_the_same(service):
    report = json.loads(status("--json"))

    assert [p["name"] for p in report["processes"]] == ["box:10", "box:20", "box:30"]
    assert [p["state"] for p in report["processes"]] == ["alive", "gone", "gone"]
    assert report["processes"][0]["claimed"] == 1
    assert report["broker"] == {
        "runner": "inprocess",
        "queue": None,
        "waiting": None,
        "error": None,
    }
    assert report["executions"] == {
        "pending": 2,
        "running": 1,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert report["oldest_pending"]["id"] == str(service.id)
    assert report["oldest_pending"]["workflow"] == "nightly"
    assert 600 <= report["oldest_pending"]["age_seconds"] < 660


def test_status_of_an_idle_service_says_so():
    text = status()

    assert "  none has sent a heartbeat" in text
    assert "Executions: 0 pending, 0 running, 0 completed, 0 failed, 0 cancelled" in text
    assert text.rstrip().endswith("Oldest pending: none")


@override_settings(EXECUTIONS_RUNNER="celery")
def test_status_reads_the_broker_queue(monkeypatch):
    monkeypatch.setattr(get_runner(), "waiting", lambda: 7)

    assert "Broker: 7 dispatches waiting in queue 'celery'" in status()


@override_settings(EXECUTIONS_RUNNER="celery")
def test_status_says_when_the_broker_cannot_be_read(monkeypatch):
    def unreachable():
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(get_runner(), "waiting", unreachable)

    report = json.loads(status("--json"))
    assert report["broker"]["waiting"] is None
    assert report["broker"]["error"].startswith("ConnectionError: Error 111")
    assert "Broker: could not read queue 'celery': ConnectionError" in status()
