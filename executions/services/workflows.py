"""Workflows: create, update, delete (one that has executions is kept)."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import ProtectedError
from django.utils.translation import gettext as _

from executions.exceptions import WorkflowInUse
from executions.models import Workflow


def workflow_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    definition: dict,
    description: str = "",
    retry_on_worker_loss: bool = False,
) -> Workflow:
    return Workflow.objects.create(
        owner=owner,
        name=name,
        description=description,
        definition=definition,
        retry_on_worker_loss=retry_on_worker_loss,
    )


def workflow_update(*, workflow: Workflow, **fields: Any) -> Workflow:
    for name, value in fields.items():
        setattr(workflow, name, value)
    workflow.save()
    return workflow


def workflow_delete(*, workflow: Workflow) -> None:
    try:
        workflow.delete()
    except ProtectedError as exc:
        raise WorkflowInUse(
            _("This workflow has executions and cannot be deleted; its executions are its history.")
        ) from exc
