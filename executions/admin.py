from django.contrib import admin
from django.utils.html import format_html

from executions.models import Execution, ExecutionEvent, ExecutionStatus, NodeRun, Workflow

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


class ExecutionEventInline(ReadOnlyInline):
    model = ExecutionEvent
    fields = ["seq", "type", "created_at", "data"]
    readonly_fields = fields
    ordering = ["seq"]


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "workflow",
        "owner",
        "status_badge",
        "progress",
        "created_at",
        "started_at",
        "finished_at",
        "execution_time",
    ]
    list_filter = ["status", "workflow", "owner", "created_at"]
    search_fields = ["id", "workflow__name", "owner__username", "message", "error"]
    list_select_related = ["workflow", "owner"]
    date_hierarchy = "created_at"
    inlines = [NodeRunInline, ExecutionEventInline]
    readonly_fields = [field.name for field in Execution._meta.fields]

    @admin.display(description="status", ordering="status")
    def status_badge(self, execution: Execution) -> str:
        return format_html(
            '<span style="color:#fff;background:{};padding:2px 8px;border-radius:8px">{}</span>',
            STATUS_COLOURS.get(execution.status, "#6b7280"),
            execution.get_status_display(),
        )

    def has_add_permission(self, request) -> bool:
        # Executions are started through the API so that they are dispatched.
        return False
