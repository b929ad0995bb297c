"""Workers appear in the workers view while they send heartbeats, and disappear
within the heartbeat timeout once killed: a real server and worker on PostgreSQL
and Redis."""

import json
import signal
import time

import pytest

from bench import processes
from tests.e2e.conftest import LOAD_TEST_LIMITS, client_view
from tests.factories import chain, node
from tests.services import require_postgres_and_redis

pytestmark = pytest.mark.services

HEARTBEAT, TIMEOUT = 0.5, 3.0


@pytest.fixture
def deployment(tmp_path):
    """One server and one worker whose heartbeats time out after 3 s."""
    require_postgres_and_redis()
    deployment = processes.distributed(
        tmp_path,
        servers=1,
        workers=1,
        worker_concurrency=10,
        WORKERS_HEARTBEAT_SECONDS=str(HEARTBEAT),
        WORKERS_TIMEOUT_SECONDS=str(TIMEOUT),
        EXECUTIONS_LEASE_SECONDS="3",
        **LOAD_TEST_LIMITS,
    )
    try:
        yield deployment
    finally:
        deployment.stop()


def workers(server) -> dict[int, dict]:
    """The workers view (GET /api/v1/workers, which the dashboard's page reads), by pid."""
    status, body = server.request("GET", "/api/v1/workers")
    assert status == 200, body
    return {process["pid"]: process for process in body["results"]}


def wait_until(condition, timeout: float, step: float = 0.1):
    """``condition()``'s first true value within ``timeout`` seconds, else fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout} s")
        time.sleep(step)


def start(server, definition: dict) -> str:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "w", "definition": definition}
    )
    assert status == 201, workflow
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"]}
    )
    assert status == 201, execution
    return execution["id"]


def status_report(deployment) -> dict:
    return json.loads(processes.manage(deployment.env, "status", "--json"))


def test_a_worker_appears_runs_and_is_gone_within_the_timeout_once_killed(deployment):
    server = client_view(deployment, deployment.servers[0])
    [worker] = deployment.workers

    seen = wait_until(lambda: workers(server).get(worker.pid), TIMEOUT)
    assert (seen["kind"], seen["state"], seen["runs_executions"]) == ("worker", "alive", True)
    assert workers(server)[server.pid]["kind"] == "server"

    execution_id = start(server, chain(node("wait", "delay", seconds=60)))
    running = wait_until(
        lambda: (workers(server)[worker.pid]["claimed"] == 1) and workers(server), 10
    )
    assert [e["id"] for e in running[worker.pid]["executions"]] == [execution_id]
    assert running[worker.pid]["lease_health"] == "ok"
    [run] = server.request("GET", f"/api/v1/executions/{execution_id}")[1]["runs"]
    assert (run["worker"], run["worker_alive"]) == (seen["name"], True)

    worker.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    gone = wait_until(lambda: workers(server)[worker.pid]["state"] == "gone", TIMEOUT + 3)
    elapsed = time.monotonic() - killed

    assert gone and elapsed < TIMEOUT + 3
    # Killed, it said nothing: gone by its heartbeats' timeout, not stopped.
    assert elapsed > TIMEOUT - 2 * HEARTBEAT - 0.5
    after = workers(server)
    assert after[worker.pid]["stopped_at"] is None
    assert after[server.pid]["state"] == "alive"
    [run] = server.request("GET", f"/api/v1/executions/{execution_id}")[1]["runs"]
    assert (run["worker_alive"], run["ended_at"]) == (False, None)
    # Nobody renews its lease now (no other worker takes it over).
    expired = wait_until(lambda: workers(server)[worker.pid]["lease_health"] == "expired", 5)
    assert expired


def test_status_shows_the_processes_the_broker_queue_and_the_executions(deployment):
    server = client_view(deployment, deployment.servers[0])
    [worker] = deployment.workers
    wait_until(lambda: workers(server).get(worker.pid), TIMEOUT)
    start(server, chain(node("wait", "delay", seconds=60)))
    wait_until(lambda: workers(server)[worker.pid]["claimed"] == 1, 10)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    start(server, chain(node("wait", "delay", seconds=1)))  # waits in the broker now

    report = status_report(deployment)
    text = processes.manage(deployment.env, "status")

    by_pid = {process["pid"]: process for process in report["processes"]}
    assert by_pid[server.pid]["kind"] == "server" and by_pid[server.pid]["state"] == "alive"
    assert by_pid[worker.pid]["claimed"] == 1
    assert report["broker"] == {"runner": "celery", "queue": "celery", "waiting": 1, "error": None}
    assert (report["executions"]["running"], report["executions"]["pending"]) == (1, 1)
    assert report["oldest_pending"]["age_seconds"] < 30
    assert "Broker: 1 dispatches waiting in queue 'celery'" in text
    assert "Executions: 1 pending, 1 running, 0 completed, 0 failed, 0 cancelled" in text

    server_pid = server.pid
    deployment.servers[0].stop()  # SIGTERM: it says it stops
    stopped = {p["pid"]: p for p in status_report(deployment)["processes"]}[server_pid]
    assert stopped["state"] == "gone" and stopped["stopped_at"] is not None
