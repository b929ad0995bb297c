"""What a runner measures, and a worker's metrics port."""

import asyncio
import socket
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core import checks
from django.core.management.base import CommandError
from prometheus_client import REGISTRY

from executions import services
from executions.clock import database_now
from executions.engine.runner import run_execution
from executions.maintenance import maintain_once
from executions.management.commands.worker import open_metrics_port
from executions.metrics import MetricsPort, loop_lag, metrics_port
from executions.metrics import loops as lag_module
from executions.models import Execution
from tests.executions.engine_helpers import create, run
from tests.factories import chain, make_execution, make_user, make_workflow, node


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Moved:
    """How far each named sample moved since this was made."""

    def __init__(self, **samples: tuple[str, dict]):
        self.samples = samples
        self.before = {key: value(name, **labels) for key, (name, labels) in samples.items()}

    def __call__(self) -> dict[str, float]:
        return {
            key: value(name, **labels) - self.before[key]
            for key, (name, labels) in self.samples.items()
        }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
async def test_a_run_counts_its_claim_end_events_commits_and_batches():
    moved = Moved(
        claimed=("workflows_executions_claimed_total", {}),
        completed=("workflows_executions_finished_total", {"status": "completed"}),
        status_events=("workflows_events_recorded_total", {"type": "status"}),
        node_events=("workflows_events_recorded_total", {"type": "node"}),
        log_events=("workflows_events_recorded_total", {"type": "log"}),
        records=("workflows_event_commit_seconds_count", {"kind": "record"}),
        states=("workflows_event_commit_seconds_count", {"kind": "state"}),
        batches=("workflows_record_batch_size_count", {}),
    )
    execution, events = await run(
        chain(node("say", "log", message="hello"), node("pick", "transform", expression="@"))
    )
    assert execution.status == "completed"
    counted = moved()
    types = [event["type"] for event in events]
    # The first status event was recorded when the execution was created.
    assert counted == {
        "claimed": 1,
        "completed": 1,
        "status_events": types.count("status"),
        "node_events": types.count("node"),
        "log_events": types.count("log"),
        "records": 1,  # the node's line; the engine's own lines go with its writes
        "states": counted["states"],
        "batches": 1,
    }
    assert counted["states"] >= 4  # nodes prepared, two nodes running, the first one done
    assert value("workflows_executions_running") == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
async def test_renewals_and_a_lost_claim_are_counted(settings, monkeypatch):
    settings.EXECUTIONS_CANCEL_POLL_INTERVAL = 0.02
    moved = Moved(
        renewals=("workflows_lease_renewals_total", {}),
        lost=("workflows_claims_lost_total", {}),
    )
    renew = services.executions_lease_renew
    renewals = []

    def renew_once_then_lose(*, claim_tokens):
        renewals.append(claim_tokens)
        return renew(claim_tokens=claim_tokens) if len(renewals) == 1 else set()

    monkeypatch.setattr(services, "executions_lease_renew", renew_once_then_lose)
    execution = await create(chain(node("wait", "delay", seconds=5)))
    await asyncio.wait_for(run_execution(execution.id), 5)
    assert moved() == {"renewals": 1, "lost": 1}


@database_sync_to_async
def lost_run(*, retry: bool) -> Execution:
    """A running execution whose runner died: its lease ran out a second ago."""
    user = make_user()
    workflow = make_workflow(user, chain(node("wait", "delay", seconds=30)))
    workflow.retry_on_worker_loss = retry
    workflow.save()
    execution = make_execution(user, workflow)
    services.execution_start(execution_id=execution.id, runner="gone")
    Execution.objects.filter(id=execution.id).update(
        lease_expires_at=database_now() - timedelta(seconds=1)
    )
    return execution


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
async def test_expired_leases_are_counted_with_what_became_of_their_runs():
    moved = Moved(
        expiries=("workflows_lease_expiries_total", {}),
        failed=("workflows_executions_finished_total", {"status": "failed"}),
        reruns=("workflows_execution_reruns_total", {}),
    )
    await lost_run(retry=False)
    await lost_run(retry=True)
    await maintain_once()
    assert moved() == {"expiries": 2, "failed": 1, "reruns": 1}


@pytest.fixture
def quick_lag(monkeypatch):
    monkeypatch.setattr(lag_module, "INTERVAL", 0.01)
    yield
    loop_lag.stop()


async def test_a_watched_loop_measures_its_lag_until_stopped(quick_lag):
    count = ("workflows_event_loop_lag_seconds_count", {"loop": "server"})
    before = value(count[0], **count[1])
    loop_lag.watch("server")
    loop_lag.watch("server")  # once a loop
    await asyncio.sleep(0.2)
    measured = value(count[0], **count[1]) - before
    assert 5 <= measured <= 25
    loop_lag.stop()
    await asyncio.sleep(0.05)
    stopped = value(count[0], **count[1])
    await asyncio.sleep(0.1)
    assert value(count[0], **count[1]) == stopped


async def test_with_metrics_off_no_loop_is_watched(quick_lag, settings):
    settings.METRICS_ENABLED = False
    loop_lag.watch("runner")
    assert loop_lag._tasks == {}


def scrape(address: tuple[str, int], path: str = "/metrics", token: str | None = None):
    """The port's answer: status and body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://{address[0]}:{address[1]}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def port():
    listener = MetricsPort()
    listener.start(port=0)
    yield listener
    listener.stop()


def test_a_worker_port_is_closed_without_a_token_or_address_when_debug_is_off(port, settings):
    settings.DEBUG = False
    status, body = scrape(port.address)
    assert status == 403
    assert "METRICS_TOKEN" in body and "METRICS_ALLOWED_ADDRESSES" in body


def test_a_worker_port_answers_a_scrape_with_the_token(port, settings):
    settings.METRICS_TOKEN = "a-token-of-twenty-chars"
    assert scrape(port.address, token="a-wrong-token-of-twenty")[0] == 403
    status, body = scrape(port.address, token="a-token-of-twenty-chars")
    assert status == 200
    assert "# TYPE workflows_executions_running gauge" in body
    assert "# TYPE workflows_event_commit_seconds histogram" in body
    assert scrape(port.address, "/", token="a-token-of-twenty-chars")[0] == 404


def test_a_worker_port_answers_an_allowed_address(port, settings):
    settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8"]
    assert scrape(port.address)[0] == 403
    settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8", "127.0.0.1"]
    assert scrape(port.address)[0] == 200


def test_a_stopped_port_listens_no_more(settings):
    settings.DEBUG = True
    listener = MetricsPort()
    listener.start(port=0)
    address = listener.address
    assert scrape(address)[0] == 200
    listener.stop()
    with pytest.raises(urllib.error.URLError):
        scrape(address)


def test_a_worker_asked_for_a_busy_port_says_so():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(CommandError, match="choose another --metrics-port"):
            open_metrics_port(taken.getsockname()[1], "127.0.0.1")
    assert metrics_port.address is None


def test_a_worker_with_metrics_off_opens_no_port(settings):
    settings.METRICS_ENABLED = False
    open_metrics_port(0, "127.0.0.1")
    assert metrics_port.address is None


@pytest.mark.parametrize(
    ("name", "bad", "check"),
    [
        ("METRICS_ALLOWED_ADDRESSES", ["127.0.0.1", "prometheus.internal"], "executions.E160"),
        ("METRICS_TOKEN", "short", "executions.E161"),
        ("METRICS_TOKEN", "twenty characters with spaces", "executions.E161"),
    ],
)
def test_metrics_settings_that_cannot_work_are_reported(settings, name, bad, check):
    assert check not in [error.id for error in checks.run_checks()]
    setattr(settings, name, bad)
    found = [error for error in checks.run_checks() if error.id == check]
    assert len(found) == 1 and name in found[0].msg
