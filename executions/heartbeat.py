"""This process's heartbeat: its row in the workers view, kept fresh from a thread.

Servers (daphne) and workers (``manage.py worker``) start it. A thread of its
own writes it every ``WORKERS_HEARTBEAT_SECONDS``, so neither a busy event
loop nor the engine's database threads hold it back; once a minute it also
deletes the rows of processes gone for ``WORKERS_RETENTION_HOURS``. A
process that stops cleanly marks its row stopped; one that is killed goes
quiet, and is gone once its last heartbeat is ``WORKERS_TIMEOUT_SECONDS`` old.
"""

import atexit
import logging
import os
import socket
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import close_old_connections, connection

from executions.services.workers import (
    WorkerIdentity,
    worker_heartbeat,
    worker_stop,
    workers_prune,
)

logger = logging.getLogger(__name__)

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# Seconds between one process's prunes of long-gone rows: a beat is mostly an UPDATE.
PRUNE_EVERY = 60.0


def runner_name() -> str:
    """This process, as it appears in ``Execution.claimed_by``, its row and engine logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


@cache
def software_version() -> str:
    """The service's version: its package's, else its ``pyproject.toml``'s."""
    try:
        return metadata.version("workflow-push")
    except metadata.PackageNotFoundError:
        pass
    try:
        return tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return ""


class Heartbeat:
    """Owns this process's row and the thread that keeps it fresh (``start``/``stop``)."""

    def __init__(self):
        self.identity: WorkerIdentity | None = None
        self._running: Callable[[], int] = lambda: 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._prune_due = float("-inf")

    @property
    def worker_id(self) -> Any:
        """This process's row id while its heartbeat runs, else ``None``."""
        return None if self.identity is None else self.identity.id

    def start(self, *, kind: str, runs_executions: bool, running: Callable[[], int]) -> None:
        """Register this process (once) and beat every ``WORKERS_HEARTBEAT_SECONDS``;
        ``running`` counts the executions it runs."""
        if self._thread is not None:
            return
        self.identity = WorkerIdentity(
            id=uuid.uuid4(),
            name=runner_name(),
            kind=kind,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=software_version(),
            runs_executions=runs_executions,
        )
        self._running = running
        self._stopping.clear()
        self._thread = threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop beating and mark the row stopped; called when the process exits."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout=10)
        try:
            worker_stop(worker_id=self.identity.id)
        except Exception:
            logger.warning("Could not mark this process stopped", exc_info=True)
        finally:
            self.identity = None

    def beat(self) -> None:
        """One heartbeat, and (at most every ``PRUNE_EVERY`` seconds) the pruning of
        long-gone rows."""
        worker_heartbeat(identity=self.identity, executions_running=self._running())
        if time.monotonic() >= self._prune_due:
            workers_prune(older_than_hours=settings.WORKERS_RETENTION_HOURS)
            self._prune_due = time.monotonic() + PRUNE_EVERY

    def _beat_forever(self) -> None:
        try:
            while True:
                close_old_connections()  # a connection the database dropped is replaced
                try:
                    self.beat()
                except Exception:
                    logger.warning("Could not write this process's heartbeat", exc_info=True)
                if self._stopping.wait(settings.WORKERS_HEARTBEAT_SECONDS):
                    return
        finally:
            connection.close()


# This process's heartbeat.
heartbeat = Heartbeat()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@checks.register
def check_heartbeat_settings(**kwargs) -> list[checks.Error]:
    """Heartbeats that cannot tell a live process from a gone one."""
    every = settings.WORKERS_HEARTBEAT_SECONDS
    timeout = settings.WORKERS_TIMEOUT_SECONDS
    keep = settings.WORKERS_RETENTION_HOURS
    problems = []
    if not (_is_number(every) and every > 0):
        problems.append(
            f"WORKERS_HEARTBEAT_SECONDS is {every!r}; set it to the seconds between a "
            "process's heartbeats, more than 0 (default 5)."
        )
    elif not (_is_number(timeout) and timeout > every):
        problems.append(
            f"WORKERS_TIMEOUT_SECONDS is {timeout!r}; set it above WORKERS_HEARTBEAT_SECONDS "
            f"({every!r}), or a live process would look gone between two heartbeats "
            "(default 20)."
        )
    if not (_is_number(keep) and keep >= 0):
        problems.append(
            f"WORKERS_RETENTION_HOURS is {keep!r}; set it to the hours a gone process stays "
            "listed, or 0 to keep them all (default 24)."
        )
    return [checks.Error(problem, id="executions.E150") for problem in problems]
