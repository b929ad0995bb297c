from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from executions.cli import ClientError, check_completed, follow
from executions.cli_many import check_all_completed, follow_feed, follow_many
from executions.models import Execution


class Command(BaseCommand):
    help = (
        "Follow an execution live in the terminal: progress bar, node lines, logs and "
        "streamed output. "
        "With several ids, follow them all on one socket, a line per message; with "
        "--feed, follow the executions feed (every matching execution as it changes)."
    )

    def add_arguments(self, parser):
        parser.add_argument("execution_ids", nargs="*", metavar="execution_id")
        parser.add_argument("--url", default="http://127.0.0.1:8037", help="the service's URL")
        parser.add_argument(
            "--token", help="API token (default: the execution owner's token in this database)"
        )
        parser.add_argument(
            "--from-start", action="store_true", help="replay every event, not just a snapshot"
        )
        parser.add_argument(
            "--feed", action="store_true", help="follow the executions feed instead, until ^C"
        )
        parser.add_argument(
            "--status", action="append", default=[], help="the feed's statuses (repeatable)"
        )
        parser.add_argument("--workflow", help="the feed's workflow id")
        parser.add_argument("--tag", help="the feed's tag")

    def handle(self, *args, execution_ids, url, token, from_start, feed, **options):
        self.stdout.ending = ""  # the screen ends its own lines
        try:
            if feed:
                if execution_ids:
                    raise CommandError("Give execution ids or --feed, not both.")
                if not token:
                    raise CommandError("--feed needs --token: the feed shows what it may see.")
                return follow_feed(url, token, feed_filter(options), self.stdout)
            if not execution_ids:
                raise CommandError("Give the id of an execution to watch (or several, or --feed).")
            token = token or owner_token(execution_ids[0])
            if len(execution_ids) == 1:
                stream = follow(url, token, execution_ids[0], self.stdout, from_start=from_start)
                return check_completed(stream)
            check_all_completed(
                follow_many(url, token, execution_ids, self.stdout, from_start=from_start)
            )
        except ClientError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            return None


def feed_filter(options: dict) -> dict:
    chosen = {"status": options["status"], "workflow_id": options["workflow"]}
    chosen["tag"] = options["tag"]
    return {key: value for key, value in chosen.items() if value}


def owner_token(execution_id: str) -> str:
    execution = Execution.objects.filter(id=execution_id).select_related("owner").first()
    if execution is None:
        raise CommandError(f"No execution {execution_id} here; pass --token to watch a remote one.")
    return Token.objects.get_or_create(user=execution.owner)[0].key
