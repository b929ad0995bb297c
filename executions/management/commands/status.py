"""The service at a glance: its processes, the broker's queue and the executions."""

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from executions import selectors
from executions.api.workers import WorkerSerializer
from executions.clock import format_timestamp
from executions.runners import get_runner

COLUMNS = [
    ("NAME", "name"),
    ("KIND", "kind"),
    ("STATE", "state"),
    ("RUNNING", "running"),
    ("CLAIMED", "claimed"),
    ("LEASES", "leases"),
    ("LAST SEEN", "last_seen"),
    ("STARTED", "started"),
    ("VERSION", "version"),
]


class Command(BaseCommand):
    help = (
        "Print the servers and workers as their heartbeats describe them, the dispatches "
        "waiting in the broker, the executions by status and the oldest pending one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, json: bool = False, **options):
        report = status_report()
        self.stdout.write(render_json(report) if json else render_text(report))


def status_report() -> dict:
    """Everything the command prints, as JSON values."""
    oldest = selectors.execution_oldest_pending()
    return {
        "heartbeat_seconds": settings.WORKERS_HEARTBEAT_SECONDS,
        "timeout_seconds": settings.WORKERS_TIMEOUT_SECONDS,
        "processes": WorkerSerializer(selectors.workers_overview(), many=True).data,
        "broker": broker_report(),
        "executions": selectors.executions_count_by_status(),
        "oldest_pending": None if oldest is None else pending_report(*oldest),
    }


def broker_report() -> dict:
    """The dispatches waiting in the broker's queue; ``waiting`` is None without a
    broker (the embedded mode) or when it cannot be read (``error`` says why)."""
    runner, name = get_runner(), settings.EXECUTIONS_RUNNER
    queue = runner.queue_name()
    if queue is None:
        return {"runner": name, "queue": None, "waiting": None, "error": None}
    report = {"runner": name, "queue": queue, "error": None}
    try:
        report["waiting"] = runner.waiting()
    except Exception as exc:
        report.update(waiting=None, error=f"{type(exc).__name__}: {exc}")
    return report


def pending_report(execution: Any, age: float) -> dict:
    return {
        "id": str(execution.id),
        "workflow": execution.workflow.name,
        "created_at": format_timestamp(execution.created_at),
        "age_seconds": round(age, 3),
    }


def render_json(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def render_text(report: dict) -> str:
    every, timeout = report["heartbeat_seconds"], report["timeout_seconds"]
    lines = [f"Processes (a heartbeat every {every:g} s; gone after {timeout:g} s without one)"]
    if report["processes"]:
        lines += table([process_row(process) for process in report["processes"]])
    else:
        lines.append("  none has sent a heartbeat")
    counts = ", ".join(f"{count} {status}" for status, count in report["executions"].items())
    lines += ["", broker_line(report["broker"]), "", f"Executions: {counts}"]
    lines.append(f"Oldest pending: {pending_line(report['oldest_pending'])}")
    return "\n".join(lines)


def process_row(process: dict) -> dict:
    runs = process["runs_executions"]
    leases = process["lease_health"] or "-"
    if process["stalest_renewal"] is not None:
        leases += f" ({process['stalest_renewal']:.1f} s)"
    state = process["state"]
    if state == "gone" and process["stopped_at"]:
        state = "stopped"
    return {
        "name": process["name"],
        "kind": process["kind"],
        "state": state,
        "running": process["executions_running"] if runs else "-",
        "claimed": process["claimed"] if runs else "-",
        "leases": leases,
        "last_seen": f"{process['seen_ago']:.1f} s ago",
        "started": process["started_at"],
        "version": process["version"] or "-",
    }


def table(rows: list[dict]) -> list[str]:
    """The rows under the column headings, each column as wide as its widest cell."""
    cells = [[heading for heading, _ in COLUMNS]]
    cells += [[str(row[key]) for _, key in COLUMNS] for row in rows]
    widths = [max(len(line[index]) for line in cells) for index in range(len(COLUMNS))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]


def broker_line(broker: dict) -> str:
    if broker["queue"] is None:
        return (
            "Broker: none; executions run in the server process "
            f"(EXECUTIONS_RUNNER={broker['runner']})"
        )
    if broker["error"]:
        return f"Broker: could not read queue {broker['queue']!r}: {broker['error']}"
    return f"Broker: {broker['waiting']} dispatches waiting in queue {broker['queue']!r}"


def pending_line(pending: dict | None) -> str:
    if pending is None:
        return "none"
    return (
        f"{pending['id']} ({pending['workflow']}), created {pending['created_at']}, "
        f"waiting {pending['age_seconds']:.1f} s"
    )
