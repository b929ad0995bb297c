"""Deleting what nobody needs any more: old finished executions, expired sessions.

Every delete statement removes at most ``EXECUTIONS_RETENTION_BATCH`` rows and
commits on its own, and the prune rests between chunks as long as each took,
so a prune of millions of rows never holds a lock for long nor crowds out the
live executions' writes. An execution's events and node rows go before the
execution itself, and only executions that have finished are chosen: a
finished execution never changes again, so nothing of a pending or running
one is ever touched.

Apps that own other tables that grow register their own pruner
(``retention_pruner_register``, from their ``ready()``); this app imports none
of them.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import QuerySet

from executions.clock import database_now
from executions.models import Execution, ExecutionEvent, ExecutionRun, ExecutionTag, NodeRun
from executions.states import TERMINAL_STATUSES

# A pruner deletes (or, with ``dry_run``, counts) rows of its table that have
# expired at ``now``, ``batch`` rows per statement, and returns how many.
Pruner = Callable[..., int]

_pruners: dict[str, Pruner] = {}
# Whoever adds this key first in an interval prunes (across processes sharing the cache).
DUE_KEY = "executions:retention:due"
# Held on PostgreSQL while a prune runs, so that two processes never prune at once.
ADVISORY_LOCK_ID = 0x6578_6563_7072_756E  # "execprun"
_local_lock = threading.Lock()


def retention_pruner_register(name: str, pruner: Pruner) -> None:
    """Run ``pruner`` in every prune; its count is reported under ``name``."""
    _pruners[name] = pruner


def executions_prune(
    *, older_than_days: float | None = None, dry_run: bool = False
) -> dict[str, int]:
    """Delete (``dry_run``: count) what has expired; the rows per kind.

    Finished executions older than ``older_than_days`` (default
    ``EXECUTIONS_RETENTION_DAYS``; 0 keeps them all) go with their events and
    node rows, expired sessions and every registered pruner's rows too.
    """
    now = database_now()
    days = settings.EXECUTIONS_RETENTION_DAYS if older_than_days is None else older_than_days
    batch = _retention_batch()
    counts = {"executions": 0, "events": 0, "node_runs": 0}
    if days > 0:
        counts = _finished_executions_prune(
            cutoff=now - timedelta(days=days), dry_run=dry_run, batch=batch
        )
    counts["sessions"] = sessions_prune(now=now, dry_run=dry_run, batch=batch)
    for name, pruner in _pruners.items():
        counts[name] = pruner(now=now, dry_run=dry_run, batch=batch)
    return counts


def executions_prune_when_due() -> dict[str, int] | None:
    """Prune unless it was done within ``EXECUTIONS_RETENTION_INTERVAL`` or is being done.

    None when skipped. The interval is shared by every process that shares the
    cache (all of them, with Redis).
    """
    interval = settings.EXECUTIONS_RETENTION_INTERVAL
    if interval <= 0 or not cache.add(DUE_KEY, True, timeout=interval):
        return None
    with _exclusive() as acquired:
        return executions_prune() if acquired else None


def delete_in_batches(rows: QuerySet, *, batch: int) -> int:
    """Delete ``rows``, at most ``batch`` per statement (each its own transaction)."""
    deleted = 0
    while True:
        chunk = rows.model.objects.filter(pk__in=rows.order_by().values("pk")[:batch])
        count, _ = chunk.delete()
        deleted += count
        if count < batch:
            return deleted


def sessions_prune(*, now: datetime, dry_run: bool, batch: int) -> int:
    """Delete Django's expired sessions; counted only when they live in the database."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store, "get_model_class"):
        if not dry_run:
            store.clear_expired()
        return 0
    expired = store.get_model_class().objects.filter(expire_date__lt=now)
    return expired.count() if dry_run else delete_in_batches(expired, batch=batch)


def _finished_executions_prune(*, cutoff: datetime, dry_run: bool, batch: int) -> dict[str, int]:
    old = Execution.objects.filter(status__in=TERMINAL_STATUSES, finished_at__lt=cutoff)
    if dry_run:
        return {
            "executions": old.count(),
            "events": ExecutionEvent.objects.filter(execution__in=old).count(),
            "node_runs": NodeRun.objects.filter(execution__in=old).count(),
        }
    counts = {"executions": 0, "events": 0, "node_runs": 0}
    while heads := dict(old.order_by().values_list("pk", "last_seq")[:batch]):
        deleted = 0
        for chunk in _chunks_of_events(heads, batch=batch):
            started = time.monotonic()
            counts["events"] += _events_delete(chunk, heads=heads, batch=batch)
            counts["node_runs"] += NodeRun.objects.filter(execution_id__in=chunk).delete()[0]
            ExecutionTag.objects.filter(execution_id__in=chunk).delete()
            ExecutionRun.objects.filter(execution_id__in=chunk).delete()
            # Their children are gone: this deletes the execution rows and nothing else.
            _, per_model = old.filter(pk__in=chunk).only("pk").delete()
            deleted += per_model.get(Execution._meta.label, 0)
            # Rest as long as it worked: the live executions' commits (and their
            # write-ahead log flushes) get at least half of the time between chunks.
            time.sleep(time.monotonic() - started)
        counts["executions"] += deleted
        if not deleted:
            break
    return counts


def _chunks_of_events(heads: dict, *, batch: int) -> Iterator[list]:
    """Execution ids in groups of at most ``batch`` events (a larger log: alone)."""
    chunk, events = [], 0
    for execution_id, last_seq in heads.items():
        if chunk and events + last_seq > batch:
            yield chunk
            chunk, events = [], 0
        chunk.append(execution_id)
        events += last_seq
    if chunk:
        yield chunk


def _events_delete(chunk: list, *, heads: dict, batch: int) -> int:
    """Delete the events of ``chunk``: a finished log is seq 1..last_seq, so a long
    one goes ``batch`` seqs at a time, straight from the (execution, seq) index."""
    if len(chunk) > 1 or heads[chunk[0]] <= batch:
        return ExecutionEvent.objects.filter(execution_id__in=chunk).delete()[0]
    deleted = 0
    for upto in range(batch, heads[chunk[0]] + batch, batch):
        rows = ExecutionEvent.objects.filter(execution_id=chunk[0], seq__lte=upto)
        deleted += rows.delete()[0]
    return deleted


@contextmanager
def _exclusive() -> Iterator[bool]:
    """Whether this process may prune now: nobody else (on PostgreSQL: in any process) is."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID])
            acquired = cursor.fetchone()[0]
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
        return
    acquired = _local_lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            _local_lock.release()


def _retention_batch() -> int:
    batch = settings.EXECUTIONS_RETENTION_BATCH
    if batch < 1:
        raise ImproperlyConfigured(
            f"EXECUTIONS_RETENTION_BATCH is {batch}; set it to the rows one delete "
            "statement may remove, at least 1 (default 1000)."
        )
    return batch
