from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from executions import pushes, selectors, services
from executions.api import schema
from executions.api.limits import (
    ExecutionCreateThrottle,
    ExplainedThrottlingMixin,
    FailedLoginThrottle,
    TokenRateThrottle,
    check_throttle,
    username_in,
)
from executions.api.parsers import BoundedJSONParser
from executions.api.permissions import OwnerMayChange
from executions.api.serializers import (
    EventQuerySerializer,
    ExecutionBatchSerializer,
    ExecutionCreateSerializer,
    ExecutionDetailSerializer,
    ExecutionFilterSerializer,
    ExecutionSerializer,
    WorkflowSerializer,
    workflow_ids_in,
)
from executions.exceptions import (
    AlreadyFinished,
    TooManyActiveExecutions,
    TooManyWaiting,
    WorkflowInUse,
)
from executions.states import TERMINAL_STATUSES
from executions.wire import event_message


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class TooManyLongPolls(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_long_polls"


class TooManyActive(APIException):
    """A cap on what is open at once: no ``Retry-After``, since nobody knows when one ends."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_active_executions"


class BatchInvalid(ValidationError):
    """Some items of a batch are invalid: each item's errors, in order (``{}`` for
    the valid ones), and nothing stored."""

    def __init__(self, errors: list[dict]):
        invalid = sum(1 for item in errors if item)
        super().__init__(
            {
                "detail": _(
                    "%(invalid)d of %(count)d items are invalid, so none was started. "
                    "Fix the items whose results list errors, then send the whole batch again."
                )
                % {"invalid": invalid, "count": len(errors)},
                "results": errors,
            }
        )


@extend_schema_view(**schema.TOKEN_OPERATIONS)
class TokenView(ExplainedThrottlingMixin, ObtainAuthToken):
    """Exchange a username and password for the API token.

    Throttled per client address (all requests) and per username (failures only).
    """

    throttle_classes = [TokenRateThrottle]
    # ObtainAuthToken names DRF's own JSON parser, which fails on deep nesting.
    parser_classes = (FormParser, MultiPartParser, BoundedJSONParser)

    def post(self, request, *args, **kwargs):
        per_username = FailedLoginThrottle(username_in(request.data))
        check_throttle(per_username, request, self)
        response = super().post(request, *args, **kwargs)  # bad credentials raise: a failure
        per_username.succeeded()
        return response


@extend_schema_view(**schema.WORKFLOW_OPERATIONS)
class WorkflowViewSet(viewsets.ModelViewSet):
    """Workflows you own (staff may read and run all; only owners and superusers change
    or delete one). The definition is validated on every write."""

    serializer_class = WorkflowSerializer
    permission_classes = [IsAuthenticated, OwnerMayChange]

    def get_queryset(self):
        return selectors.workflows_visible_to(self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.workflow_create(
            owner=self.request.user, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.workflow_update(
            workflow=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        try:
            services.workflow_delete(workflow=instance)
        except WorkflowInUse as exc:
            raise Conflict(str(exc)) from exc


@extend_schema_view(**schema.EXECUTION_OPERATIONS)
class ExecutionViewSet(
    ExplainedThrottlingMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Executions you started (staff: all). Filter with ``?status=``, ``?workflow=`` and
    ``?tag=``."""

    def get_throttles(self):
        # A batch is counted by ``batch`` itself, once it knows how many it holds.
        return [ExecutionCreateThrottle()] if self.action == "create" else []

    def get_serializer_class(self):
        return ExecutionDetailSerializer if self.action == "retrieve" else ExecutionSerializer

    def get_queryset(self):
        executions = selectors.executions_visible_to(self.request.user)
        if self.action == "retrieve":
            return executions.prefetch_related("nodes")
        if self.action != "list":
            return executions
        executions = executions.defer("definition")  # shown in the detail only
        filters = ExecutionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        if "status" in filters.validated_data:
            executions = executions.filter(status=filters.validated_data["status"])
        if "workflow" in filters.validated_data:
            executions = executions.filter(workflow_id=filters.validated_data["workflow"])
        if "tag" in filters.validated_data:
            executions = executions.filter(tag_rows__tag=filters.validated_data["tag"])
        return executions

    def create(self, request, *args, **kwargs):
        serializer = ExecutionCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        try:
            execution = services.execution_create(
                owner=request.user,
                workflow=serializer.validated_data["workflow_id"],
                input_data=serializer.validated_data["input_data"],
                tags=serializer.validated_data["tags"],
            )
        except TooManyActiveExecutions as exc:
            raise TooManyActive(str(exc)) from exc
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_201_CREATED)

    @action(detail=False, methods=["post"])
    def batch(self, request):
        """Start up to API_EXECUTION_BATCH_MAX_ITEMS executions in one transaction: all
        of them, or (any item invalid) none, with each item's errors."""
        body = ExecutionBatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        items = body.validated_data["items"]
        check_throttle(ExecutionCreateThrottle(executions=len(items)), request, self)
        workflows = selectors.workflows_visible_to(request.user).filter(
            id__in=workflow_ids_in(items)
        )
        context = {"request": request, "workflows": {w.id: w for w in workflows}}
        checked = [ExecutionCreateSerializer(data=item, context=context) for item in items]
        if not all([item.is_valid() for item in checked]):
            raise BatchInvalid([item.errors for item in checked])
        try:
            executions = services.executions_create(
                owner=request.user,
                items=[
                    services.ExecutionItem(
                        item.validated_data["workflow_id"],
                        item.validated_data["input_data"],
                        item.validated_data["tags"],
                    )
                    for item in checked
                ],
            )
        except TooManyActiveExecutions as exc:
            raise TooManyActive(str(exc)) from exc
        results = ExecutionSerializer(executions, many=True).data
        return Response({"results": results}, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a pending execution ends at once, a running one stops at its next check."""
        execution = self.get_object()
        try:
            execution = services.execution_cancel(
                execution_id=execution.id, requested_by=request.user
            )
        except AlreadyFinished as exc:
            raise Conflict(str(exc)) from exc
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """The stored events after ``?after=N`` (default 0), oldest first, ``?limit`` a page;
        with ``?wait=S``, when there is none yet, the page once there is (long-poll)."""
        execution = self.get_object()
        query = EventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after, limit, wait = (query.validated_data[k] for k in ("after", "limit", "wait"))

        def page() -> dict:
            stored = selectors.events_after(execution.id, after, limit=limit + 1)
            next_url = None
            if len(stored) > limit:
                next_url = replace_query_param(
                    request.build_absolute_uri(), "after", stored[limit - 1].seq
                )
            return {"next": next_url, "results": [event_message(e) for e in stored[:limit]]}

        content = page()
        waiter = pushes.events_page_waiter()
        if content["results"] or not wait or execution.status in TERMINAL_STATUSES or not waiter:
            return Response(content)
        try:
            return waiter(
                execution=execution, user_id=request.user.pk, after=after, wait=wait, page=page
            )
        except TooManyWaiting as exc:
            raise TooManyLongPolls(str(exc)) from exc
