"""The dashboard's pages. Each is a shell: its data comes from the REST API and the
execution stream, through the same endpoints any other client uses."""

import inspect

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from executions import selectors
from executions.engine.registry import get_node_type, node_type_names


@login_required
def executions_page(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/executions.html", {"section": "executions"})


@login_required
def execution_page(request: HttpRequest, execution_id) -> HttpResponse:
    execution = selectors.execution_visible_to(request.user, execution_id)
    if execution is None:
        raise Http404(_("No such execution, or not yours."))
    return render(
        request, "dashboard/execution.html", {"section": "executions", "execution": execution}
    )


@login_required
def workers_page(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied(_("Only staff may see the servers and workers."))
    context = {"section": "workers", "timeout": settings.WORKERS_TIMEOUT_SECONDS}
    return render(request, "dashboard/workers.html", context)


@login_required
def workflows_page(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/workflows.html", {"section": "workflows"})


@login_required
def workflow_page(request: HttpRequest, workflow_id=None) -> HttpResponse:
    workflow = None
    if workflow_id is not None:
        workflow = selectors.workflows_visible_to(request.user).filter(id=workflow_id).first()
        if workflow is None:
            raise Http404(_("No such workflow, or not yours."))
    context = {"section": "workflows", "workflow": workflow, "node_types": node_type_reference()}
    return render(request, "dashboard/workflow.html", context)


def node_type_reference() -> list[dict]:
    """Each registered node type with its params and its summary (else the first
    paragraph of its docstring)."""
    reference = []
    for name in node_type_names():
        node_type = get_node_type(name)
        summary = node_type.summary or (inspect.getdoc(type(node_type)) or "").split("\n\n")[0]
        params = list(node_type.params_serializer().fields)
        reference.append({"name": name, "params": params, "summary": summary})
    return reference
