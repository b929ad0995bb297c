"""Workflows, their executions and each execution's ordered event log."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from executions.states import TERMINAL_STATUSES, ExecutionStatus, NodeStatus


class EventType(models.TextChoices):
    """Kinds of entries in an execution's event log (the wire ``type``)."""

    STATUS = "status", "Status"
    """The execution's state changed; the payload is a full state snapshot."""
    NODE = "node", "Node"
    """A node changed status (one per attempt start and end)."""
    LOG = "log", "Log"
    """A log line written by a node or by the engine."""
    CHUNK = "chunk", "Chunk"
    """A piece of a node's streamed output (``ctx.stream``): the pieces written
    to one stream within ``EXECUTIONS_CHUNK_INTERVAL``, coalesced."""


class Workflow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    definition = models.JSONField()
    retry_on_worker_loss = models.BooleanField(
        default=False,
        help_text="Run an execution again from the start when its worker is lost "
        "(instead of failing it). Only for workflows that are safe to repeat.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Execution(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="executions")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="executions"
    )
    status = models.CharField(
        max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING
    )
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, default="")
    input_data = models.JSONField(default=dict)
    # A copy of the workflow's definition made when the execution was created:
    # what runs, on every run, whatever the workflow became since.
    definition = models.JSONField(help_text="the workflow's definition when this was created")
    result = models.JSONField(null=True, blank=True)
    # null, not "", while there is no error: the wire format says ``"error": null``.
    error = models.TextField(null=True, blank=True)  # noqa: DJ001
    execution_time = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The event log's head: the seq of the newest event and when it was
    # recorded. Only ``executions.services`` moves it, under the row lock.
    last_seq = models.PositiveIntegerField(default=0)
    last_event_at = models.DateTimeField(null=True, blank=True)
    # The log lines written while it runs, and their messages' bytes, as counted
    # against EXECUTIONS_MAX_LOG_LINES and EXECUTIONS_MAX_LOG_BYTES; once
    # ``log_cut``, later lines are dropped. Moved with the head, under its lock.
    log_lines = models.PositiveIntegerField(default=0)
    log_bytes = models.PositiveBigIntegerField(default=0)
    log_cut = models.BooleanField(default=False)
    # The bytes its nodes streamed (``ctx.stream``), as counted against
    # EXECUTIONS_MAX_STREAM_BYTES; once ``stream_cut``, later pieces are dropped.
    stream_bytes = models.PositiveBigIntegerField(default=0)
    stream_cut = models.BooleanField(default=False)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Who runs it: the runner's name, a token that fences off a runner that
    # lost its claim, and until when the claim holds without a heartbeat.
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    claim_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # The id of the request that created it (project.requestid), for its logs.
    request_id = models.CharField(max_length=64, blank=True, default="")
    redispatches = models.PositiveIntegerField(
        default=0, help_text="times it was dispatched again since it was last queued to run"
    )
    runs = models.PositiveSmallIntegerField(default=0, help_text="times a runner claimed it")
    # As given at creation, for display; ``ExecutionTag`` holds one row per tag
    # for filtering. Never changed afterwards.
    tags = models.JSONField(default=list, blank=True)
    # When its feed-visible state (``executions.feed.FEED_MARKED_FIELDS``) last
    # changed, in the order the feed reads changes in. Written only by the
    # database's triggers (migration 0009), whatever statement changes the row;
    # a value saved from here is ignored.
    feed_mark = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The executions feed reads changes in this order (executions.feed).
            models.Index(fields=["feed_mark", "id"], name="execution_feed_mark_idx"),
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["status", "lease_expires_at"]),
            models.Index(fields=["status", "dispatched_at"]),
            # Retention picks the oldest finished executions.
            models.Index(fields=["status", "finished_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} / {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class NodeRun(models.Model):
    """The state of one node of an execution, as of its latest attempt."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="nodes")
    node_id = models.CharField(max_length=100)
    node_type = models.CharField(max_length=100)
    position = models.PositiveIntegerField(help_text="the node's index in the definition")
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=1)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)  # noqa: DJ001  null like the wire format

    class Meta:
        ordering = ["execution", "position"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "node_id"], name="unique_node_run"),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} {self.node_id} ({self.status})"


class ExecutionTag(models.Model):
    """One of an execution's tags, for ``?tag=`` filters (``Execution.tags`` shows them)."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="tag_rows")
    tag = models.CharField(max_length=64)

    class Meta:
        constraints = [
            # Also the index that a filter by tag reads.
            models.UniqueConstraint(fields=["tag", "execution"], name="unique_execution_tag"),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} #{self.tag}"


class ExecutionEvent(models.Model):
    """One entry of an execution's log; ``seq`` is 1, 2, 3, ... with no gaps."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=16, choices=EventType.choices)
    data = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["execution", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "seq"], name="unique_event_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} #{self.seq} {self.type}"


class WorkerKind(models.TextChoices):
    """What a process of the service is (``Worker.kind``)."""

    SERVER = "server", _("Server")
    """An ASGI server (daphne); in the embedded mode it also runs executions."""
    WORKER = "worker", _("Worker")
    """A ``manage.py worker`` process, running executions from the broker's queue."""


class Worker(models.Model):
    """A server or worker process, as its heartbeats describe it.

    One row per process start, written by the process itself
    (``executions.heartbeat``); every time on it is the database's. It is alive
    while its last heartbeat is at most ``WORKERS_TIMEOUT_SECONDS`` old and it
    has not said it stopped (``executions.selectors.workers_overview``).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # As in ``Execution.claimed_by`` (``executions.heartbeat.runner_name``).
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=WorkerKind.choices)
    runs_executions = models.BooleanField(
        default=True, help_text="it runs executions (a worker, or a server in the embedded mode)"
    )
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    version = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="its latest heartbeat")
    executions_running = models.PositiveIntegerField(
        default=0, help_text="the executions it ran at its latest heartbeat"
    )
    stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="when it said it stopped; empty if it never did"
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # Pruning takes those not heard of for long.
            models.Index(fields=["last_seen_at"], name="worker_last_seen_idx"),
            models.Index(fields=["name", "started_at"], name="worker_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class RunOutcome(models.TextChoices):
    """How a run of an execution ended (``ExecutionRun.outcome``)."""

    COMPLETED = "completed", _("Completed")
    """The execution completed in this run."""
    FAILED = "failed", _("Failed")
    """The execution failed in this run (a node, or the loss of its runner)."""
    CANCELLED = "cancelled", _("Cancelled")
    """The execution was cancelled during this run."""
    REQUEUED = "requeued", _("Requeued")
    """Its runner was lost or shut down, and the execution went back to run again."""


class ExecutionRun(models.Model):
    """One claim of an execution by a runner: its run number, who ran it and since when.

    A run that ends by sending the execution back to run again records its end
    here; the last run of an execution that ended ends with it (its
    ``finished_at`` and ``status``, as ``executions.selectors.execution_runs`` reads it).
    """

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="run_rows")
    number = models.PositiveSmallIntegerField(help_text="1 for the first run, as Execution.runs")
    # The process row, without a constraint: process rows are pruned, runs stay.
    worker = models.ForeignKey(
        Worker,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="runs",
    )
    worker_name = models.CharField(max_length=200, blank=True, default="")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=RunOutcome.choices, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["execution", "number"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "number"], name="unique_execution_run"),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} run {self.number} on {self.worker_name or '?'}"
