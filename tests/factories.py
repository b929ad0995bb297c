"""Small builders for test data."""

import itertools
from typing import Any

from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from executions import services
from executions.models import Execution, Workflow

_counter = itertools.count(1)


def make_user(username: str | None = None, *, staff: bool = False) -> User:
    username = username or f"user{next(_counter)}"
    return User.objects.create_user(username, password="pass-word-123", is_staff=staff)


def make_token(user: User) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def node(node_id: str, node_type: str, **params: Any) -> dict:
    return {"id": node_id, "type": node_type, "params": params}


def chain(*nodes: dict) -> dict:
    """A definition whose nodes run one after another."""
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"nodes": list(nodes), "edges": edges}


def make_workflow(owner: User, definition: dict | None = None, name: str = "flow") -> Workflow:
    definition = definition or chain(
        node("wait", "delay", seconds=0), node("pick", "transform", expression="@")
    )
    return services.workflow_create(owner=owner, name=name, definition=definition)


def make_execution(
    owner: User, workflow: Workflow | None = None, input_data: dict | None = None
) -> Execution:
    """Create (and, in transactional tests, start) an execution through the service."""
    workflow = workflow or make_workflow(owner)
    return services.execution_create(owner=owner, workflow=workflow, input_data=input_data or {})
