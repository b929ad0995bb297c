"""Claims, leases and recovery: nothing lost, nothing run twice."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from executions import services
from executions.engine.runner import release_local_runs, run_execution
from executions.exceptions import ClaimLost
from executions.maintenance import maintain_once
from executions.models import Execution, ExecutionEvent
from tests.factories import chain, make_execution, make_user, make_workflow, node

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatched(monkeypatch):
    """Executions are not started; the ids dispatched are collected here."""
    ids = []
    monkeypatch.setattr("executions.dispatch.execution_dispatch", ids.append)
    return ids


@database_sync_to_async
def create(definition=None, *, retry=False):
    user = make_user()
    workflow = make_workflow(user, definition or chain(node("wait", "delay", seconds=0.2)))
    workflow.retry_on_worker_loss = retry
    workflow.save()
    return make_execution(user, workflow)


@database_sync_to_async
def reload(execution):
    return Execution.objects.get(id=execution.id)


@database_sync_to_async
def log_messages(execution):
    events = ExecutionEvent.objects.filter(execution=execution, type="log").order_by("seq")
    return [e.data["message"] for e in events]


@database_sync_to_async
def expire_lease(execution):
    # Stands in for a runner that died: nobody renews the claim any more.
    claimed = Execution.objects.get(id=execution.id)
    claimed.lease_expires_at = timezone.now() - timedelta(seconds=1)
    claimed.save(update_fields=["lease_expires_at"])


async def test_a_claim_is_taken_once(dispatched):
    execution = await create()
    claim = await database_sync_to_async(services.execution_start)(
        execution_id=execution.id, runner="a"
    )
    again = await database_sync_to_async(services.execution_start)(
        execution_id=execution.id, runner="b"
    )
    assert again is None
    assert claim.claimed_by == "a" and claim.runs == 1
    assert claim.lease_expires_at > timezone.now() + timedelta(seconds=25)


async def test_duplicate_deliveries_run_an_execution_once(dispatched):
    execution = await create()
    await asyncio.gather(*[run_execution(execution.id) for _ in range(5)])
    starts = [m for m in await log_messages(execution) if m.startswith("Execution started")]
    assert len(starts) == 1
    assert (await reload(execution)).status == "completed"


async def test_writes_with_a_lost_claim_are_refused_and_record_nothing(dispatched):
    execution = await create()
    await database_sync_to_async(services.execution_start)(execution_id=execution.id)
    before = (await reload(execution)).last_seq
    with pytest.raises(ClaimLost):
        await database_sync_to_async(services.execution_log)(
            execution_id=execution.id,
            node_id=None,
            level="info",
            message="from a runner that lost its claim",
            claim_token=uuid.uuid4(),
        )
    assert (await reload(execution)).last_seq == before


async def test_lost_runner_fails_the_execution_with_a_clear_error(dispatched):
    execution = await create(chain(node("wait", "delay", seconds=30)))
    await database_sync_to_async(services.execution_start)(execution_id=execution.id, runner="w1")
    await database_sync_to_async(services.execution_nodes_prepare)(
        execution_id=execution.id, nodes=[("wait", "delay", 1)]
    )
    await database_sync_to_async(services.execution_node_update)(
        execution_id=execution.id, node_id="wait", status="running", attempt=1
    )
    await maintain_once()
    assert (await reload(execution)).status == "running"  # the lease still holds

    await expire_lease(execution)
    await maintain_once()
    lost = await reload(execution)
    assert lost.status == "failed"
    assert lost.error == "Runner w1 stopped renewing its claim; the execution was lost."
    last = await database_sync_to_async(
        lambda: list(ExecutionEvent.objects.filter(execution=execution).order_by("-seq")[:2])
    )()
    assert last[0].type == "status" and last[0].data["status"] == "failed"
    assert last[1].type == "log" or last[1].data.get("status") == "cancelled"


async def test_lost_runner_reruns_a_repeatable_workflow_up_to_the_limit(dispatched, settings):
    settings.EXECUTIONS_MAX_RUNS = 2
    execution = await create(retry=True)
    for run in (1, 2):
        await database_sync_to_async(services.execution_start)(execution_id=execution.id)
        await expire_lease(execution)
        await maintain_once()
        current = await reload(execution)
        assert current.runs == run
    assert current.status == "failed"
    assert "already ran 2 times, the limit is 2" in current.error
    assert dispatched == [execution.id, execution.id]  # created, then one rerun
    messages = await log_messages(execution)
    assert "running the execution again from the start" in messages[1]


async def test_rerun_goes_back_to_pending_and_runs_to_completion(dispatched):
    execution = await create(retry=True)
    await database_sync_to_async(services.execution_start)(execution_id=execution.id)
    await expire_lease(execution)
    await maintain_once()
    requeued = await reload(execution)
    assert (requeued.status, requeued.progress, requeued.claim_token) == ("pending", 0, None)
    assert requeued.message.startswith("Waiting to run again")
    await run_execution(execution.id)
    finished = await reload(execution)
    assert finished.status == "completed" and finished.runs == 2


async def test_claims_are_renewed_while_running(dispatched, settings):
    settings.EXECUTIONS_LEASE_SECONDS = 0.6
    execution = await create(chain(node("wait", "delay", seconds=2)))
    run = asyncio.create_task(run_execution(execution.id))
    for _ in range(8):
        await asyncio.sleep(0.25)
        await maintain_once()
    await run
    assert (await reload(execution)).status == "completed"


async def test_pending_executions_whose_dispatch_was_lost_are_dispatched_again(
    dispatched, settings
):
    execution = await create()
    old = await create()
    await database_sync_to_async(
        lambda: Execution.objects.filter(id=old.id).update(
            dispatched_at=timezone.now() - timedelta(seconds=120)
        )
    )()
    dispatched.clear()
    await maintain_once()
    assert dispatched == [old.id]
    await maintain_once()
    assert dispatched == [old.id]  # its dispatch time moved on
    assert execution.id not in dispatched


@pytest.mark.parametrize("retry, status", [(True, "pending"), (False, "failed")])
async def test_shutdown_hands_runs_back(dispatched, retry, status):
    execution = await create(chain(node("wait", "delay", seconds=30)), retry=retry)
    run = asyncio.create_task(run_execution(execution.id))
    while (await reload(execution)).status != "running" or not (
        await database_sync_to_async(
            lambda: ExecutionEvent.objects.filter(execution=execution, type="node").exists()
        )()
    ):
        await asyncio.sleep(0.02)
    assert release_local_runs() == 1
    await asyncio.wait_for(run, 5)
    handed_back = await reload(execution)
    assert handed_back.status == status
    assert "shut down" in (handed_back.error or handed_back.message)
