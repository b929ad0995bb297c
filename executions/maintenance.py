"""Finds executions whose runner was lost and dispatches that the broker lost.

Every runner process (each worker, and the server in embedded mode) does
this every ``EXECUTIONS_REAPER_INTERVAL`` seconds. The work is idempotent
and done under row locks, so any number of processes may do it at once.
"""

import asyncio
import logging

from django.conf import settings
from django.db import close_old_connections, connection

from executions import metrics, selectors, services
from executions.engine.db import db
from executions.runners import get_runner
from executions.runners.local import in_process_loop
from executions.services.retention import executions_prune_when_due

logger = logging.getLogger(__name__)

_started = False


def start_maintenance() -> None:
    """Start the maintenance loop on this process's runner loop (once)."""
    global _started
    if not _started and settings.EXECUTIONS_MAINTENANCE:
        _started = True
        in_process_loop.submit(maintain_forever())


async def maintain_forever() -> None:
    while True:
        await asyncio.sleep(settings.EXECUTIONS_REAPER_INTERVAL)
        try:
            await maintain_once()
        except Exception:
            logger.exception("Execution maintenance failed; retrying")


async def maintain_once() -> None:
    prune_in_background()
    for execution_id, runner in await db(selectors.executions_with_expired_lease):
        reason = f"Runner {runner or 'unknown'} stopped renewing its claim"
        execution = await db(services.execution_interrupt, execution_id=execution_id, reason=reason)
        if execution is not None:
            metrics.lease_expired(execution.status)
            logger.warning("Execution %s: %s; now %s", execution_id, reason, execution.status)
    await redispatch_stale()


async def redispatch_stale() -> None:
    """Dispatch again what the broker seems to have lost, never adding to its backlog."""
    try:
        queued = await asyncio.to_thread(get_runner().waiting)
    except Exception:
        logger.warning(
            "Could not read the broker's queue; nothing is dispatched again", exc_info=True
        )
        return
    count = await db(
        services.executions_redispatch_stale,
        older_than=settings.EXECUTIONS_REDISPATCH_AFTER,
        queued=queued,
    )
    if count:
        logger.warning("Dispatched %d pending executions again", count)


_pruning: asyncio.Future | None = None


def prune_in_background() -> asyncio.Future:
    """Prune, when due, in a thread of its own: lost runs are not kept waiting behind it."""
    global _pruning
    if _pruning is None or _pruning.done():
        _pruning = asyncio.get_running_loop().run_in_executor(None, _prune_when_due)
    return _pruning


def _prune_when_due() -> None:
    close_old_connections()
    try:
        counts = executions_prune_when_due()
        if counts and any(counts.values()):
            logger.info("Pruned %s", ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    except Exception:
        logger.exception("Pruning old executions failed; trying again next interval")
    finally:
        # This thread is the default executor's: no connection is left behind in it.
        connection.close()
