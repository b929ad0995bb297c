import json

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from executions.cli import ClientError, api_request, check_completed, follow


class Command(BaseCommand):
    help = (
        "Start an execution of a workflow (name or id) through the API, and optionally follow it."
    )

    def add_arguments(self, parser):
        parser.add_argument("workflow", help="workflow name or id")
        parser.add_argument("--input", default="{}", help="input_data as a JSON object")
        parser.add_argument(
            "--follow", action="store_true", dest="follow_run", help="watch it until it ends"
        )
        parser.add_argument("--url", default="http://127.0.0.1:8037", help="the service's URL")
        parser.add_argument("--token", help="API token (default: --user's token in this database)")
        parser.add_argument("--user", default="demo", help="whose token to use without --token")

    def handle(self, *args, workflow, input, follow_run, url, token, user, **options):
        try:
            input_data = json.loads(input)
        except ValueError as exc:
            raise CommandError(f"--input is not valid JSON: {exc}") from exc
        token = token or user_token(user)
        try:
            workflow_id = find_workflow(url, token, workflow)
            execution = api_request(
                url,
                token,
                "POST",
                "/api/v1/executions",
                {"workflow_id": workflow_id, "input_data": input_data},
            )
            self.stdout.write(f"execution {execution['id']}")
            if follow_run:
                self.stdout.ending = ""  # the screen ends its own lines
                check_completed(follow(url, token, execution["id"], self.stdout, from_start=True))
        except ClientError as exc:
            raise CommandError(str(exc)) from exc


def user_token(username: str) -> str:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user {username!r} here; pass --token or --user.")
    return Token.objects.get_or_create(user=user)[0].key


def find_workflow(url: str, token: str, name_or_id: str) -> str:
    path = "/api/v1/workflows"
    while path:
        page = api_request(url, token, "GET", path)
        for workflow in page["results"]:
            if name_or_id in (workflow["id"], workflow["name"]):
                return workflow["id"]
        path = page["next"] and page["next"][page["next"].index("/api/") :]
    raise CommandError(f"No workflow named or with id {name_or_id!r} is visible to this token.")
