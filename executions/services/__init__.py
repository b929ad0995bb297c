"""Every write of the executions app.

Each change of an execution goes through one transaction that locks the
execution row, checks the transition, appends its events with the next
``seq`` values and saves the new state (on PostgreSQL a log line does all
of that in one statement, ``log_statement``, and so does the end of a run,
read without the lock and written only if nothing moved: ``one_statement``).
Every stored event is
announced by ``executions.signals.event_recorded`` (``eventlog.event_stored``),
which the push listens to, to send it to subscribers after commit. Once an execution has
reached a terminal status nothing more is appended: the terminal ``status``
event is always the last of its log.
"""

from executions.services.creation import ExecutionItem, execution_create, executions_create
from executions.services.endings import (
    execution_cancel,
    execution_complete,
    execution_complete_with_node,
    execution_fail,
    execution_finish,
)
from executions.services.leases import (
    execution_interrupt,
    executions_lease_renew,
    executions_redispatch_stale,
)
from executions.services.runs import (
    execution_log,
    execution_node_update,
    execution_nodes_prepare,
    execution_nodes_skip,
    execution_progress,
    execution_start,
)
from executions.services.workflows import workflow_create, workflow_delete, workflow_update

__all__ = [
    "ExecutionItem",
    "execution_cancel",
    "execution_complete",
    "execution_complete_with_node",
    "execution_create",
    "execution_fail",
    "execution_finish",
    "execution_interrupt",
    "execution_log",
    "execution_node_update",
    "execution_nodes_prepare",
    "execution_nodes_skip",
    "execution_progress",
    "execution_start",
    "executions_create",
    "executions_lease_renew",
    "executions_redispatch_stale",
    "workflow_create",
    "workflow_delete",
    "workflow_update",
]
