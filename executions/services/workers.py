"""The processes' own rows: registered, kept alive by heartbeats, stopped, pruned.

Every time written here is the database's (``Now()`` in the statement, or
``database_now``): a process's heartbeat is judged by others, whose clocks
differ from its own.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models.functions import Now

from executions.clock import database_now
from executions.models import Worker


@dataclass(frozen=True)
class WorkerIdentity:
    """What a process says about itself in every heartbeat's row."""

    id: Any
    name: str
    kind: str
    host: str
    pid: int
    version: str
    runs_executions: bool


def worker_register(*, identity: WorkerIdentity, executions_running: int = 0) -> Worker:
    """Store the process's row, seen now; its ``started_at`` is now, too."""
    now = database_now()
    return Worker.objects.create(
        id=identity.id,
        name=identity.name,
        kind=identity.kind,
        host=identity.host,
        pid=identity.pid,
        version=identity.version,
        runs_executions=identity.runs_executions,
        started_at=now,
        last_seen_at=now,
        executions_running=executions_running,
    )


def worker_heartbeat(*, identity: WorkerIdentity, executions_running: int) -> None:
    """Mark the process seen now, running ``executions_running`` executions; its row
    is stored again if it is missing (pruned while the process could not reach
    the database)."""
    seen = Worker.objects.filter(id=identity.id).update(
        last_seen_at=Now(), executions_running=executions_running, stopped_at=None
    )
    if not seen:
        worker_register(identity=identity, executions_running=executions_running)


def worker_stop(*, worker_id: Any) -> None:
    """The process is stopping: it is gone now, not once its heartbeats time out."""
    Worker.objects.filter(id=worker_id).update(
        last_seen_at=Now(), stopped_at=Now(), executions_running=0
    )


def workers_prune(*, older_than_hours: float) -> int:
    """Delete the rows of processes not heard of for ``older_than_hours``; how many.
    Their executions' runs keep the process's name."""
    if older_than_hours <= 0:
        return 0
    cutoff = database_now() - timedelta(hours=older_than_hours)
    deleted, _ = Worker.objects.filter(last_seen_at__lt=cutoff).delete()
    return deleted
