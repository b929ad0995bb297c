"""Prometheus metrics: what a process measures, and who may read them.

Every process keeps its own metrics, in prometheus_client's default registry,
and serves them itself: each server at ``/metrics`` (``project.metrics``),
each worker on a port of its own (``manage.py worker --metrics-port``,
``MetricsPort``). Prometheus scrapes every process as a target of its own and
sums across them, so no multiprocess mode (metrics shared through files) is
needed. ``METRICS_ENABLED`` off makes every measure a no-op and closes both.

What runners measure is here (``runs``, ``loops``); what servers measure is
``realtime.metrics``. Every label takes one of a small, fixed set of values:
never an execution, a user or an address.
"""

from executions.metrics.access import metrics_access_problem
from executions.metrics.loops import LoopLag, loop_lag
from executions.metrics.port import MetricsPort, metrics_port
from executions.metrics.registry import (
    Labelled,
    bounded,
    metrics_enabled,
    metrics_page,
    switch,
)
from executions.metrics.runs import (
    RECORD,
    STATE,
    claim_lost,
    event_committed,
    event_recorded,
    execution_claimed,
    execution_finished,
    lease_expired,
    leases_renewed,
    record_batch_written,
    runs_counted_by,
)

__all__ = [
    "RECORD",
    "STATE",
    "Labelled",
    "LoopLag",
    "MetricsPort",
    "bounded",
    "claim_lost",
    "event_committed",
    "event_recorded",
    "execution_claimed",
    "execution_finished",
    "lease_expired",
    "leases_renewed",
    "loop_lag",
    "metrics_access_problem",
    "metrics_enabled",
    "metrics_page",
    "metrics_port",
    "record_batch_written",
    "runs_counted_by",
    "switch",
]
