"""Runs executions dispatched through Celery, many at once in one process."""

import logging
import threading

from celery.signals import worker_shutting_down
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from executions import log_context
from executions.engine.runner import active_runs, release_local_runs
from executions.heartbeat import heartbeat, runner_name
from executions.maintenance import start_maintenance
from executions.metrics import metrics_enabled, metrics_port
from executions.models import WorkerKind
from executions.runners import get_runner
from executions.runners.celery import CeleryRunner, app
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
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="serve this worker's Prometheus metrics on this port, at /metrics",
        )
        parser.add_argument(
            "--metrics-address",
            default="127.0.0.1",
            help="the address of --metrics-port (default 127.0.0.1; 0.0.0.0: every interface)",
        )

    def handle(self, *args, concurrency, loglevel, **options):
        if not isinstance(get_runner(), CeleryRunner):
            raise CommandError(
                "Workers take executions from Redis: set REDIS_URL (and leave "
                "EXECUTIONS_RUNNER unset or 'celery')."
            )
        log_context.set_worker(runner_name())
        limit_malloc_arenas()
        tune_garbage_collector()
        tune_thread_switching()
        open_metrics_port(options["metrics_port"], options["metrics_address"])
        start_maintenance()
        heartbeat.start(kind=WorkerKind.WORKER, runs_executions=True, running=active_runs)
        worker_shutting_down.connect(release_after_grace, weak=False)
        try:
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
        finally:
            heartbeat.stop()
            metrics_port.stop()


def open_metrics_port(port: int | None, address: str) -> None:
    """Serve this worker's metrics on ``address:port`` (``--metrics-port``), when given."""
    if port is None:
        return
    if not metrics_enabled():
        logger.warning("Not serving metrics on port %d: METRICS_ENABLED is off", port)
        return
    try:
        metrics_port.start(port=port, address=address)
    except OSError as error:
        raise CommandError(
            f"Could not serve metrics on {address}:{port} ({error}): choose another "
            "--metrics-port, or --metrics-address."
        ) from error


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
