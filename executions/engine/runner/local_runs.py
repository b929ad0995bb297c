"""The runs of this process, and the watcher that keeps their claims.

A run is here from its claim to its end. While any is, one watcher task on
the runner's loop renews all their claims and notices the cancellations
requested elsewhere: two queries for all the runs, about once a second.
"""

import asyncio
import logging
from enum import IntEnum
from typing import Any, Protocol

from django.conf import settings

from executions import metrics, services
from executions.engine.db import db
from executions.selectors import executions_cancel_requested

logger = logging.getLogger(__name__)


class StopReason(IntEnum):
    """Why a run stops early, strongest last: a run being abandoned writes nothing."""

    NONE = 0
    """No stop was asked for."""
    CANCEL = 1
    """A cancellation was requested: the execution ends ``cancelled``."""
    RELEASE = 2
    """This runner shuts down: the execution is handed back, to run again or fail."""
    ABANDON = 3
    """Its claim was lost (taken over elsewhere): nothing more is written."""


class LocalRun(Protocol):
    """What the watcher needs of a run (``executions.engine.runner.run.Run``)."""

    id: Any
    claim_token: Any

    def request_stop(self, reason: StopReason) -> None: ...


# Runs of this process by execution id; changed only on the runner's loop.
_active: dict[Any, LocalRun] = {}
_watcher: asyncio.Task | None = None


def run_added(run: LocalRun) -> None:
    """Count a run that holds its claim, and watch it; called on the runner's loop."""
    global _watcher
    _active[run.id] = run
    if _watcher is None or _watcher.done():
        _watcher = asyncio.get_running_loop().create_task(_watch_runs())


def run_removed(execution_id: Any) -> None:
    """Forget a run that ended here; called on the runner's loop."""
    _active.pop(execution_id, None)


def cancel_local_run(execution_id: Any) -> None:
    """Stop a run of this process, if it has one; safe to call from any thread."""
    run = _active.get(execution_id)
    if run is not None:
        run.request_stop(StopReason.CANCEL)


def release_local_runs() -> int:
    """Hand every run of this process back (this runner is shutting down); any thread."""
    runs = list(_active.values())
    for run in runs:
        run.request_stop(StopReason.RELEASE)
    return len(runs)


def active_runs() -> int:
    return len(_active)


metrics.runs_counted_by(active_runs)


async def _watch_runs() -> None:
    """Renew this process's claims and notice cancellations requested elsewhere,
    two queries for all runs, about once a second."""
    while _active:
        interval = min(
            settings.EXECUTIONS_CANCEL_POLL_INTERVAL, settings.EXECUTIONS_LEASE_SECONDS / 3
        )
        await asyncio.sleep(interval)
        runs = list(_active.values())
        try:
            held = await db(
                services.executions_lease_renew, claim_tokens=[r.claim_token for r in runs]
            )
            requested = await db(executions_cancel_requested, execution_ids=[r.id for r in runs])
        except Exception:
            logger.exception("Could not renew claims or check cancellations; retrying")
            continue
        metrics.leases_renewed(len(held))
        for run in runs:
            if run.claim_token not in held:
                metrics.claim_lost()
                run.request_stop(StopReason.ABANDON)
            elif run.id in requested:
                run.request_stop(StopReason.CANCEL)
