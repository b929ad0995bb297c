from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from executions.cli import ClientError, check_completed, follow
from executions.models import Execution


class Command(BaseCommand):
    help = "Follow an execution live in the terminal: progress bar, node lines and logs."

    def add_arguments(self, parser):
        parser.add_argument("execution_id")
        parser.add_argument("--url", default="http://127.0.0.1:8037", help="the service's URL")
        parser.add_argument(
            "--token", help="API token (default: the execution owner's token in this database)"
        )
        parser.add_argument(
            "--from-start", action="store_true", help="replay every event, not just a snapshot"
        )

    def handle(self, *args, execution_id, url, token, from_start, **options):
        token = token or owner_token(execution_id)
        self.stdout.ending = ""  # the screen ends its own lines
        try:
            check_completed(follow(url, token, execution_id, self.stdout, from_start=from_start))
        except ClientError as exc:
            raise CommandError(str(exc)) from exc


def owner_token(execution_id: str) -> str:
    execution = Execution.objects.filter(id=execution_id).select_related("owner").first()
    if execution is None:
        raise CommandError(f"No execution {execution_id} here; pass --token to watch a remote one.")
    return Token.objects.get_or_create(user=execution.owner)[0].key
