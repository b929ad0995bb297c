"""``GET /api/v1/workers``: the service's processes as their heartbeats describe them
(staff only), for the dashboard's workers page and for monitoring."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from executions import selectors
from executions.models import WorkerKind
from executions.selectors import LeaseHealth


class RunningExecutionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    workflow_id = serializers.UUIDField()
    workflow_name = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    lease_expires_at = serializers.DateTimeField(allow_null=True)


class WorkerSerializer(serializers.Serializer):
    """One process (``executions.selectors.WorkerRead``)."""

    id = serializers.UUIDField(source="worker.id")
    name = serializers.CharField(
        source="worker.name", help_text="host:pid, as an execution's runs name it."
    )
    kind = serializers.ChoiceField(source="worker.kind", choices=WorkerKind.choices)
    runs_executions = serializers.BooleanField(
        source="worker.runs_executions",
        help_text="A worker, or a server that runs executions itself (the embedded mode).",
    )
    host = serializers.CharField(source="worker.host")
    pid = serializers.IntegerField(source="worker.pid")
    version = serializers.CharField(source="worker.version")
    state = serializers.SerializerMethodField(
        help_text="alive: heard of within WORKERS_TIMEOUT_SECONDS and not stopped; else gone."
    )
    started_at = serializers.DateTimeField(source="worker.started_at")
    last_seen_at = serializers.DateTimeField(
        source="worker.last_seen_at", help_text="Its latest heartbeat, by the database's clock."
    )
    seen_ago = serializers.FloatField(help_text="Seconds since its latest heartbeat.")
    stopped_at = serializers.DateTimeField(
        source="worker.stopped_at",
        allow_null=True,
        help_text="When it said it stopped; null for a process that is running or was killed.",
    )
    executions_running = serializers.IntegerField(
        source="worker.executions_running",
        help_text="The executions it ran at its latest heartbeat, as it counts them.",
    )
    claimed = serializers.IntegerField(
        help_text="The running executions claimed in its name, as the database has them."
    )
    executions = RunningExecutionSerializer(
        many=True, help_text="The first of those, oldest first (at most 20)."
    )
    lease_health = serializers.ChoiceField(
        choices=[(health.value, health.value) for health in LeaseHealth],
        allow_null=True,
        help_text="ok: every lease of its executions renewed within the last third of "
        "EXECUTIONS_LEASE_SECONDS; late: one is overdue; expired: one ran out. null when it "
        "runs none.",
    )
    stalest_renewal = serializers.FloatField(
        allow_null=True, help_text="Seconds since its least recently renewed lease was renewed."
    )

    def get_state(self, read: selectors.WorkerRead) -> str:
        return "alive" if read.alive else "gone"


class WorkersSerializer(serializers.Serializer):
    heartbeat_seconds = serializers.FloatField(help_text="WORKERS_HEARTBEAT_SECONDS.")
    timeout_seconds = serializers.FloatField(help_text="WORKERS_TIMEOUT_SECONDS.")
    lease_seconds = serializers.FloatField(help_text="EXECUTIONS_LEASE_SECONDS.")
    results = WorkerSerializer(
        many=True, help_text="Live processes first, then the gone ones (at most 200 in all)."
    )


class WorkersView(APIView):
    """The servers and workers, alive or gone, with what each runs (staff only)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="workers_list",
        summary="The servers and workers, alive or gone, with what each runs",
        responses={
            200: WorkersSerializer,
            403: OpenApiResponse(description="Only staff may see the service's processes."),
        },
    )
    def get(self, request):
        content = {
            "heartbeat_seconds": settings.WORKERS_HEARTBEAT_SECONDS,
            "timeout_seconds": settings.WORKERS_TIMEOUT_SECONDS,
            "lease_seconds": settings.EXECUTIONS_LEASE_SECONDS,
            "results": selectors.workers_overview(),
        }
        return Response(WorkersSerializer(content).data)
