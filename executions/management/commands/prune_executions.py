"""Deletes old finished executions, expired sessions and expired socket tickets now."""

from django.core.management.base import BaseCommand, CommandError

from executions.services.retention import executions_prune

LABELS = {"node_runs": "node rows"}


class Command(BaseCommand):
    help = (
        "Delete finished executions older than EXECUTIONS_RETENTION_DAYS (with their events "
        "and node rows), expired sessions and expired socket tickets; live executions stay."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="DAYS",
            help="finished this many days ago or more (default EXECUTIONS_RETENTION_DAYS; "
            "0 keeps every execution)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )

    def handle(self, *args, older_than, dry_run, **options):
        if older_than is not None and older_than < 0:
            raise CommandError(f"--older-than is {older_than}; give 0 or more days.")
        counts = executions_prune(older_than_days=older_than, dry_run=dry_run)
        summary = ", ".join(f"{n} {LABELS.get(kind, kind)}" for kind, n in counts.items())
        self.stdout.write(f"{'Would delete' if dry_run else 'Deleted'}: {summary}")
