from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from executions import selectors, services
from executions.api.serializers import (
    ExecutionCreateSerializer,
    ExecutionFilterSerializer,
    ExecutionSerializer,
    WorkflowSerializer,
)
from executions.exceptions import WorkflowInUse


class WorkflowViewSet(viewsets.ModelViewSet):
    """Workflows you own (staff: all). The definition is validated on every write."""

    serializer_class = WorkflowSerializer

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


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ExecutionViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Executions you started (staff: all). Filter with ``?status=`` and ``?workflow=``."""

    serializer_class = ExecutionSerializer

    def get_queryset(self):
        executions = selectors.executions_visible_to(self.request.user)
        if self.action != "list":
            return executions
        filters = ExecutionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        if "status" in filters.validated_data:
            executions = executions.filter(status=filters.validated_data["status"])
        if "workflow" in filters.validated_data:
            executions = executions.filter(workflow_id=filters.validated_data["workflow"])
        return executions

    def create(self, request, *args, **kwargs):
        serializer = ExecutionCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        execution = services.execution_create(
            owner=request.user,
            workflow=serializer.validated_data["workflow_id"],
            input_data=serializer.validated_data["input_data"],
        )
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_201_CREATED)
