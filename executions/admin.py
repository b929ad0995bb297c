from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from executions import selectors, services
from executions.clock import database_now
from executions.exceptions import AlreadyFinished, TooManyActiveExecutions
from executions.models import (
    Execution,
    ExecutionEvent,
    ExecutionRun,
    ExecutionStatus,
    ExecutionTag,
    NodeRun,
    Worker,
    Workflow,
)

STATUS_COLOURS = {
    ExecutionStatus.PENDING: "#6b7280",
    ExecutionStatus.RUNNING: "#2563eb",
    ExecutionStatus.COMPLETED: "#16a34a",
    ExecutionStatus.FAILED: "#dc2626",
    ExecutionStatus.CANCELLED: "#a16207",
}


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "created_at", "updated_at"]
    list_filter = ["owner"]
    search_fields = ["name", "description", "id"]
    readonly_fields = ["id", "created_at", "updated_at"]

    def has_change_permission(self, request: HttpRequest, obj: Workflow | None = None) -> bool:
        return super().has_change_permission(request, obj) and owns(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Workflow | None = None) -> bool:
        return super().has_delete_permission(request, obj) and owns(request, obj)


def owns(request: HttpRequest, workflow: Workflow | None) -> bool:
    """Staff may see every workflow, but only its owner or a superuser changes one."""
    return workflow is None or workflow.owner_id == request.user.pk or request.user.is_superuser


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class NodeRunInline(ReadOnlyInline):
    model = NodeRun
    fields = ["node_id", "node_type", "status", "attempts", "started_at", "duration", "error"]
    readonly_fields = fields
    ordering = ["position"]


class ExecutionRunInline(ReadOnlyInline):
    """Each run: the process that ran it (linked while its row is kept), and its end."""

    model = ExecutionRun
    fields = ["number", "worker_link", "started_at", "ended", "outcome_shown", "reason"]
    readonly_fields = fields
    ordering = ["number"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("worker", "execution")

    @admin.display(description="worker")
    def worker_link(self, run: ExecutionRun) -> str:
        if run.worker is None:
            return run.worker_name or "-"
        url = reverse("admin:executions_worker_change", args=[run.worker.id])
        return format_html('<a href="{}">{}</a>', url, run.worker_name)

    @admin.display(description="ended")
    def ended(self, run: ExecutionRun) -> str:
        ended_at, _ = selectors.run_end(run, run.execution)
        return "-" if ended_at is None else date_format(localtime(ended_at), "DATETIME_FORMAT")

    @admin.display(description="outcome")
    def outcome_shown(self, run: ExecutionRun) -> str:
        _, outcome = selectors.run_end(run, run.execution)
        return outcome or "running"


class ExecutionEventInline(ReadOnlyInline):
    model = ExecutionEvent
    fields = ["seq", "type", "created_at", "data"]
    readonly_fields = fields
    ordering = ["seq"]


class TagFilter(admin.SimpleListFilter):
    """Executions with one tag, chosen among the ``TAG_CHOICES`` most used ones
    (``?tag=`` in the address takes any)."""

    title = "tag"
    parameter_name = "tag"
    TAG_CHOICES = 50

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        used = (
            ExecutionTag.objects.values("tag")
            .annotate(uses=Count("id"))
            .order_by("-uses", "tag")[: self.TAG_CHOICES]
        )
        return [(row["tag"], row["tag"]) for row in used]

    def queryset(self, request, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        if self.value() is None:
            return queryset
        return queryset.filter(tag_rows__tag=self.value())


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "workflow",
        "owner",
        "status_badge",
        "progress_bar",
        "created_at",
        "started_at",
        "finished_at",
        "duration",
        "tag_list",
    ]
    list_filter = ["status", TagFilter, "workflow", "owner", "created_at"]
    search_fields = [
        "id",
        "workflow__name",
        "owner__username",
        "message",
        "error",
        "=tag_rows__tag",
    ]
    list_select_related = ["workflow", "owner"]
    date_hierarchy = "created_at"
    inlines = [ExecutionRunInline, NodeRunInline, ExecutionEventInline]
    readonly_fields = [field.name for field in Execution._meta.fields]
    actions = ["cancel_executions", "run_again"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, execution: Execution) -> str:
        return format_html(
            '<span style="color:#fff;background:{};padding:2px 8px;border-radius:8px">{}</span>',
            STATUS_COLOURS.get(execution.status, "#6b7280"),
            execution.get_status_display(),
        )

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, execution: Execution) -> str:
        return format_html(
            '<progress value="{}" max="100" style="width:80px"></progress> {}%',
            execution.progress,
            execution.progress,
        )

    @admin.display(description="tags")
    def tag_list(self, execution: Execution) -> str:
        return ", ".join(execution.tags) or "-"

    @admin.display(description="duration", ordering="execution_time")
    def duration(self, execution: Execution) -> str:
        if execution.execution_time is None:
            return "-"
        return f"{execution.execution_time:.2f} s"

    def has_add_permission(self, request) -> bool:
        # Executions are started through the API so that they are dispatched.
        return False

    @admin.action(description=gettext_lazy("Cancel the selected executions"))
    def cancel_executions(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        cancelled, ended = 0, 0
        for execution_id in queryset.values_list("id", flat=True):
            try:
                services.execution_cancel(execution_id=execution_id, requested_by=request.user)
                cancelled += 1
            except AlreadyFinished:
                ended += 1
        if cancelled:
            self.message_user(
                request,
                _(
                    "Asked %(count)d execution(s) to stop: pending ones are cancelled at once, "
                    "running ones at their next check."
                )
                % {"count": cancelled},
                messages.SUCCESS,
            )
        if ended:
            self.message_user(
                request,
                _("%(count)d execution(s) had already ended and were left as they are.")
                % {"count": ended},
                messages.WARNING,
            )

    @admin.action(
        description=gettext_lazy(
            "Run again (same workflow, input and tags, the workflow's current definition)"
        )
    )
    def run_again(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        started, refused = [], None
        for execution in queryset.select_related("workflow"):
            try:
                started.append(
                    services.execution_create(
                        owner=request.user,
                        workflow=execution.workflow,
                        input_data=execution.input_data,
                        tags=execution.tags,
                    )
                )
            except TooManyActiveExecutions as exc:
                refused = exc
                break
        if started:
            self.message_user(request, started_message(started), messages.SUCCESS)
        if refused is not None:
            not_started = queryset.count() - len(started)
            self.message_user(
                request,
                _("%(count)d execution(s) not started: %(reason)s")
                % {"count": not_started, "reason": refused},
                messages.ERROR,
            )


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    """The servers and workers as their heartbeats describe them; written by the
    processes themselves, so read-only here."""

    list_display = [
        "name",
        "kind",
        "state",
        "executions_running",
        "running_link",
        "last_seen_at",
        "started_at",
        "stopped_at",
        "version",
    ]
    list_filter = ["kind", "runs_executions"]
    search_fields = ["name", "host", "=id"]
    readonly_fields = [field.name for field in Worker._meta.fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Worker]:
        return selectors.workers_with_liveness(database_now())

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="state", ordering="alive")
    def state(self, worker: Worker) -> str:
        alive = worker.alive
        return format_html(
            '<span style="color:#fff;background:{};padding:2px 8px;border-radius:8px">{}</span>',
            "#16a34a" if alive else "#6b7280",
            "alive" if alive else ("stopped" if worker.stopped_at else "gone"),
        )

    @admin.display(description="claims")
    def running_link(self, worker: Worker) -> str:
        url = reverse("admin:executions_execution_changelist")
        query = urlencode({"status": ExecutionStatus.RUNNING, "claimed_by": worker.name})
        return format_html('<a href="{}?{}">running executions</a>', url, query)


def started_message(started: list[Execution]) -> str:
    links = format_html_join(
        ", ",
        '<a href="{}">{}</a>',
        ((reverse("admin:executions_execution_change", args=[new.id]), new.id) for new in started),
    )
    return format_html(
        _("Started {count} new execution(s): {links}"), count=len(started), links=links
    )
