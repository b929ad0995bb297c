"""The Celery backend (``EXECUTIONS_RUNNER = "celery"``): a task carries each
execution to a worker process (``manage.py worker``), which runs it on its
runner loop.

Redis is the broker (the one the channel layer already uses). Tasks are
acknowledged late and prefetched one at a time, so an execution whose
worker dies is delivered again; the claim in ``execution_start`` makes sure
a second delivery never runs it twice.
"""

import uuid
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError

from executions.runners.local import LoopRunner, run_here

app = Celery("executions")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="executions.run")
def run_execution_task(execution_id: str) -> None:
    """Run one execution on this worker's runner loop; returns when it has ended."""
    run_here(uuid.UUID(execution_id)).result()


def queue_length() -> int:
    """The tasks waiting in the broker's queue (every priority), not yet taken by a worker."""
    with app.pool.acquire(block=True) as connection:
        try:
            declared = connection.default_channel.queue_declare(
                queue=app.conf.task_default_queue, passive=True
            )
        except ChannelError:
            return 0  # Redis drops an empty list: no queue means nothing waits
    return declared.message_count


class CeleryRunner(LoopRunner):
    """Sends each execution to the broker's queue, for a worker to run."""

    def dispatch(self, execution_id: Any) -> None:
        run_execution_task.delay(str(execution_id))

    def queue_name(self) -> str:
        return app.conf.task_default_queue

    def waiting(self) -> int:
        return queue_length()
