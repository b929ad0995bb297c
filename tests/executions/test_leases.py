"""Claims, leases and recovery: nothing lost, nothing run twice."""

import asyncio
import itertools
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db.models import F
from django.utils import timezone

from executions import services
from executions.clock import database_now
from executions.engine.runner import release_local_runs, run_execution
from executions.exceptions import ClaimLost
from executions.maintenance import maintain_once
from executions.models import Execution, ExecutionEvent, NodeRun
from executions.runners import get_runner
from tests.clock import process_clock_off_by
from tests.factories import chain, make_execution, make_user, make_workflow, node

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatched(no_dispatch) -> list:
    """Executions are not started; the ids dispatched are collected here."""
    return no_dispatch


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
    claimed.lease_expires_at = database_now() - timedelta(seconds=1)
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
    assert (requeued.status, requeued.claim_token) == ("pending", None)
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


@pytest.mark.parametrize("retry", [True, False])
async def test_a_run_handed_back_after_a_cancel_was_requested_ends_cancelled(
    dispatched, monkeypatch, retry
):
    # The request was made elsewhere and this runner has not polled it yet.
    monkeypatch.setattr(get_runner(), "cancel_notify", lambda execution_id: None)
    execution = await create(chain(node("wait", "delay", seconds=30)), retry=retry)
    run = asyncio.create_task(run_execution(execution.id))
    while not await database_sync_to_async(
        lambda: ExecutionEvent.objects.filter(execution=execution, type="node").exists()
    )():
        await asyncio.sleep(0.02)
    await database_sync_to_async(services.execution_cancel)(execution_id=execution.id)
    assert release_local_runs() == 1
    await asyncio.wait_for(run, 5)
    handed_back = await reload(execution)
    assert (handed_back.status, handed_back.error) == ("cancelled", None)
    assert dispatched == [execution.id]  # created; not run again


@database_sync_to_async
def start_with_nodes(execution, nodes, *, runner="w1"):
    """What a runner records before it is lost: its claim, its nodes, the first running."""
    services.execution_start(execution_id=execution.id, runner=runner)
    services.execution_nodes_prepare(
        execution_id=execution.id, nodes=[(node_id, node_type, 1) for node_id, node_type in nodes]
    )
    services.execution_node_update(
        execution_id=execution.id, node_id=nodes[0][0], status="running", attempt=1
    )


@database_sync_to_async
def events_of(execution) -> list[ExecutionEvent]:
    return list(ExecutionEvent.objects.filter(execution=execution).order_by("seq"))


@pytest.mark.parametrize("retry", [True, False])
async def test_a_cancel_requested_before_the_runner_was_lost_ends_cancelled(dispatched, retry):
    definition = chain(node("wait", "delay", seconds=30), node("after", "log", message="never"))
    execution = await create(definition, retry=retry)
    await start_with_nodes(execution, [("wait", "delay"), ("after", "log")])
    await database_sync_to_async(services.execution_cancel)(execution_id=execution.id)
    seq_before_loss = (await reload(execution)).last_seq
    await expire_lease(execution)
    dispatched.clear()

    await maintain_once()

    cancelled = await reload(execution)
    assert (cancelled.status, cancelled.error, cancelled.runs) == ("cancelled", None, 1)
    assert cancelled.message.startswith("Cancelled")
    assert dispatched == []  # not run again
    after = [e for e in await events_of(execution) if e.seq > seq_before_loss]
    assert [(e.type, e.data.get("node_id"), e.data.get("status")) for e in after] == [
        ("node", "wait", "cancelled"),
        ("node", "after", "skipped"),
        ("log", None, None),
        ("status", None, "cancelled"),
    ]
    nodes = await database_sync_to_async(
        lambda: dict(NodeRun.objects.filter(execution=execution).values_list("node_id", "status"))
    )()
    assert nodes == {"wait": "cancelled", "after": "skipped"}


HOUR = 3600


@pytest.mark.parametrize(
    "claimer, reaper",
    [(-HOUR, 0), (0, HOUR)],
    ids=["claimed-by-a-clock-behind", "judged-by-a-clock-ahead"],
)
async def test_a_live_lease_is_not_taken_whatever_the_clocks_of_the_processes(
    dispatched, claimer, reaper
):
    execution = await create(chain(node("wait", "delay", seconds=30)))
    with process_clock_off_by(claimer):
        await start_with_nodes(execution, [("wait", "delay")])
    with process_clock_off_by(reaper):
        await maintain_once()
    live = await reload(execution)
    assert (live.status, live.claimed_by) == ("running", "w1")
    now = await database_sync_to_async(database_now)()
    remaining = (live.lease_expires_at - now).total_seconds()
    assert 25 < remaining <= 30


async def test_an_expired_lease_is_recovered_by_a_process_whose_clock_is_behind(dispatched):
    execution = await create(chain(node("wait", "delay", seconds=30)))
    await start_with_nodes(execution, [("wait", "delay")])
    await expire_lease(execution)
    with process_clock_off_by(-HOUR):
        await maintain_once()
    assert (await reload(execution)).status == "failed"


async def test_a_lease_renewed_by_a_process_whose_clock_is_behind_holds(dispatched):
    execution = await create(chain(node("wait", "delay", seconds=30)))
    await start_with_nodes(execution, [("wait", "delay")])
    token = (await reload(execution)).claim_token
    with process_clock_off_by(-HOUR):
        held = await database_sync_to_async(services.executions_lease_renew)(claim_tokens=[token])
    assert held == {token}
    await maintain_once()
    assert (await reload(execution)).status == "running"


@pytest.mark.parametrize("starter", [HOUR, -HOUR])
async def test_durations_are_never_negative_when_clocks_differ(dispatched, starter):
    execution = await create(chain(node("only", "log", message="hi")))
    with process_clock_off_by(starter):
        await start_with_nodes(execution, [("only", "log")])
    await database_sync_to_async(services.execution_complete_with_node)(
        execution_id=execution.id, node_id="only", output=1, result=1
    )
    finished = await reload(execution)
    assert 0 <= finished.execution_time < 60
    assert finished.finished_at >= finished.started_at
    run = await database_sync_to_async(NodeRun.objects.get)(execution=execution)
    assert 0 <= run.duration < 60
    completed = [e for e in await events_of(execution) if e.data.get("status") == "completed"]
    assert 0 <= completed[0].data["duration"] < 60
    assert 0 <= completed[1].data["execution_time"] < 60
    times = [e.created_at for e in await events_of(execution)]
    assert times == sorted(times)


async def test_a_rerun_never_reports_less_progress_than_before(dispatched):
    definition = chain(node("first", "delay", seconds=0.6), node("second", "log", message="hi"))
    execution = await create(definition, retry=True)
    await start_with_nodes(execution, [("first", "delay"), ("second", "log")])
    await database_sync_to_async(services.execution_node_update)(
        execution_id=execution.id, node_id="first", status="completed", output=1, progress=50
    )
    await expire_lease(execution)
    await maintain_once()
    assert (await reload(execution)).status == "pending"

    await run_execution(execution.id)

    statuses = [e.data for e in await events_of(execution) if e.type == "status"]
    assert statuses[-1]["status"] == "completed"
    progress = [data["progress"] for data in statuses]
    assert progress == sorted(progress)
    # Nor does it send the progress already reported again as news.
    states = [(data["status"], data["progress"], data["message"]) for data in statuses]
    assert all(earlier != later for earlier, later in itertools.pairwise(states))


@database_sync_to_async
def pending_dispatched_ago(count: int, seconds: float) -> list:
    """``count`` pending executions, the oldest first, last dispatched ``seconds`` ago."""
    user = make_user()
    workflow = make_workflow(user, chain(node("wait", "delay", seconds=0)))
    ids = [make_execution(user, workflow).id for _ in range(count)]
    now = database_now()
    for age, execution_id in enumerate(ids):
        Execution.objects.filter(id=execution_id).update(
            dispatched_at=now - timedelta(seconds=seconds + count - age)
        )
    return ids


@database_sync_to_async
def time_passes(seconds: float) -> None:
    """Every dispatch happened ``seconds`` longer ago."""
    Execution.objects.update(dispatched_at=F("dispatched_at") - timedelta(seconds=seconds))


def broker_holds(monkeypatch, waiting) -> None:
    monkeypatch.setattr(get_runner(), "waiting", lambda: waiting)


async def passes_over(minutes: int, dispatched: list) -> Counter:
    """Maintenance once a minute for ``minutes`` minutes; the dispatches of each execution."""
    for _ in range(minutes):
        await maintain_once()
        await time_passes(61)
    return Counter(dispatched)


async def test_stale_executions_behind_a_backlog_are_not_dispatched_again(dispatched, monkeypatch):
    ids = await pending_dispatched_ago(5, 120)
    broker_holds(monkeypatch, 5)  # one dispatch waiting for each: workers are just busy
    dispatched.clear()
    assert await passes_over(10, dispatched) == Counter()
    assert await database_sync_to_async(
        lambda: set(Execution.objects.filter(id__in=ids).values_list("redispatches", flat=True))
    )() == {0}


async def test_lost_dispatches_are_sent_again_once_per_backoff_period(dispatched, monkeypatch):
    ids = await pending_dispatched_ago(5, 120)
    broker_holds(monkeypatch, 0)  # the broker lost them all
    dispatched.clear()
    # Minutes 0, 2 and 6: the wait doubles after each re-dispatch.
    assert await passes_over(7, dispatched) == Counter(dict.fromkeys(ids, 3))


async def test_no_more_are_dispatched_again_than_the_broker_is_missing(dispatched, monkeypatch):
    ids = await pending_dispatched_ago(5, 120)
    dispatched.clear()
    # Three of the five dispatches wait in the broker, and those sent again join them.
    monkeypatch.setattr(get_runner(), "waiting", lambda: 3 + len(dispatched))
    await maintain_once()
    assert dispatched == ids[:2]  # the oldest
    await maintain_once()
    assert dispatched == ids[:2]


async def test_with_celery_the_queue_never_grows_past_the_pending_executions(settings):
    from executions.runners.celery import app, queue_length

    def purge() -> None:
        with app.pool.acquire(block=True) as connection:
            connection.default_channel.queue_purge(app.conf.task_default_queue)

    settings.EXECUTIONS_RUNNER = "celery"
    purge()
    try:
        await pending_dispatched_ago(3, 120)
        assert queue_length() == 3
        for _ in range(5):
            await maintain_once()
            await time_passes(61)
        assert queue_length() == 3
        purge()  # the broker restarted and lost them
        await maintain_once()
        assert queue_length() == 3
    finally:
        purge()


async def test_of_two_loops_that_read_the_same_stale_executions_one_dispatches_them(
    dispatched, monkeypatch
):
    from executions.services import leases

    ids = await pending_dispatched_ago(3, 120)
    dispatched.clear()
    now = await database_sync_to_async(database_now)()
    read_by_both = await database_sync_to_async(leases._stale)(now, 60, None)
    assert [row[0] for row in read_by_both] == ids
    redispatch = database_sync_to_async(leases.executions_redispatch_stale)
    assert await redispatch(older_than=60) == 3
    # The other loop goes on from what it read before the first one's claims.
    monkeypatch.setattr(leases, "_stale", lambda *args: read_by_both)
    assert await redispatch(older_than=60) == 0
    assert dispatched == ids
