"""Creates the demo user, its API token and a demo workflow, and says how to use them."""

import shlex

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from executions import services
from executions.models import Workflow

DEMO_DEFINITION = {
    "nodes": [
        {"id": "greet", "type": "log", "params": {"message": "Starting the demo", "level": "info"}},
        {"id": "wait", "type": "delay", "params": {"seconds": 2}},
        {"id": "shout", "type": "transform", "params": {"expression": "{echo: input}"}},
        {"id": "think", "type": "delay", "params": {"seconds": 3}},
        {"id": "done", "type": "log", "params": {"message": "All done", "level": "info"}},
    ],
    "edges": [
        {"source": "greet", "target": "wait"},
        {"source": "greet", "target": "think"},
        {"source": "wait", "target": "shout"},
        {"source": "shout", "target": "done"},
        {"source": "think", "target": "done"},
    ],
}


class Command(BaseCommand):
    help = "Create (or reset) the demo user and workflow and print how to start and watch a run."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo-password")
        parser.add_argument("--base-url", default="http://127.0.0.1:8037")

    def handle(self, *args, username, password, base_url, **options):
        user, _ = User.objects.get_or_create(username=username)
        user.is_staff = True
        user.set_password(password)
        user.save()
        token = Token.objects.get_or_create(user=user)[0].key
        workflow = Workflow.objects.filter(owner=user, name="demo").first()
        if workflow is None:
            workflow = services.workflow_create(
                owner=user,
                name="demo",
                description="Logs, waits on two branches, transforms its input, logs again.",
                definition=DEMO_DEFINITION,
            )
        body = f'{{"workflow_id": "{workflow.id}", "input_data": {{"input": "test"}}}}'
        start = (
            f"curl -s -X POST {base_url}/api/v1/executions "
            f'-H "Authorization: Bearer {token}" -H "Content-Type: application/json" '
            f"-d {shlex.quote(body)}"
        )
        self.stdout.write(
            f"\nDemo ready.\n"
            f"  Dashboard:  {base_url}/  (user {username!r}, password {password!r})\n"
            f"  Admin:      {base_url}/admin/\n"
            f"  API docs:   {base_url}/api/v1/docs\n"
            f"  API token:  {token}\n\n"
            f"Start an execution and watch it live (in another terminal, in this folder):\n\n"
            f"  DEBUG=1 .venv/bin/python manage.py run demo "
            f'--input \'{{"input": "test"}}\' --follow\n\n'
            f"Or with curl, then watch it by id:\n\n"
            f"  {start}\n"
            f"  DEBUG=1 .venv/bin/python manage.py watch <execution id>\n"
        )
