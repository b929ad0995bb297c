"""Runs executions dispatched through Celery, many at once in one process."""

import logging
import os
import socket
import threading

from celery.signals import worker_shutting_down
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from executions import log_context
from executions.engine.runner import active_runs, release_local_runs
from executions.maintenance import start_maintenance
from executions.queue import app
from executions.runtime import (
    limit_malloc_arenas,
    tune_garbage_collector,
    tune_thread_switching,
)

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Start a worker that runs executions from the queue. Each execution waits on one "
        "event loop, so --concurrency executions run at once in this process."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency", type=int, default=100, help="executions run at once (default 100)"
        )
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, concurrency, loglevel, **options):
        if settings.EXECUTIONS_RUNNER != "celery":
            raise CommandError(
                "Workers take executions from Redis: set REDIS_URL (and leave "
                "EXECUTIONS_RUNNER unset or 'celery')."
            )
        log_context.set_worker(f"{socket.gethostname()}:{os.getpid()}")
        limit_malloc_arenas()
        tune_garbage_collector()
        tune_thread_switching()
        start_maintenance()
        worker_shutting_down.connect(release_after_grace, weak=False)
        app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )


def release_after_grace(**kwargs) -> None:
    """On SIGTERM: let runs finish for the grace period, then hand the rest back."""
    grace = settings.EXECUTIONS_SHUTDOWN_GRACE_SECONDS
    logger.warning("Shutting down: %d executions get %g s to finish", active_runs(), grace)
    timer = threading.Timer(grace, _release)
    timer.daemon = True
    timer.start()


def _release() -> None:
    count = release_local_runs()
    if count:
        logger.warning("Handed %d unfinished executions back", count)
