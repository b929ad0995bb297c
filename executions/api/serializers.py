import contextlib
import uuid

from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.engine.graph import InvalidDefinition, parse_definition
from executions.exceptions import InvalidTags
from executions.models import Execution, ExecutionStatus, NodeRun, RunOutcome, Workflow
from executions.selectors import (
    NodeStreamsRead,
    execution_runs,
    node_streams,
    workflows_visible_to,
)
from executions.tags import MAX_TAG_LENGTH, MAX_TAGS, RULE, tags_clean

# The shape of a definition, for the OpenAPI schema; parse_definition checks the rest.
DEFINITION_SCHEMA = {
    "type": "object",
    "properties": {
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string", "example": "delay"},
                    "params": {"type": "object", "example": {"seconds": 1.5}},
                    "timeout_seconds": {"type": "number"},
                    "retries": {"type": "integer", "minimum": 0, "maximum": 10},
                    "retry_backoff_seconds": {"type": "number"},
                    "weight": {"type": "number"},
                },
                "required": ["id", "type", "params"],
            },
        },
        "edges": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"source": {"type": "string"}, "target": {"type": "string"}},
                "required": ["source", "target"],
            },
        },
    },
    "required": ["nodes"],
}


@extend_schema_field(DEFINITION_SCHEMA)
class DefinitionField(serializers.JSONField):
    """A workflow definition: ``{"nodes": [...], "edges": [...]}``."""


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """Any JSON object."""


TAG_LENGTH_RULE = format_lazy(
    gettext_lazy("A tag is 1 to {max} characters; ask for one of that length."), max=MAX_TAG_LENGTH
)
TAG_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH}


@extend_schema_field(
    {
        "type": "array",
        "items": TAG_SCHEMA,
        "maxItems": MAX_TAGS,
        "description": f"The execution's tags: {RULE}; a tag given twice is kept once.",
    }
)
class TagsField(serializers.Field):
    """An execution's tags, checked by ``executions.tags``."""

    def to_internal_value(self, data):
        try:
            return tags_clean(data)
        except InvalidTags as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value):
        return list(value)


class WorkflowSerializer(serializers.ModelSerializer):
    definition = DefinitionField()

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "description",
            "definition",
            "retry_on_worker_loss",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_definition(self, value):
        try:
            parse_definition(value)
        except InvalidDefinition as exc:
            raise serializers.ValidationError(exc.errors) from exc
        return value


class ExecutionSerializer(serializers.ModelSerializer):
    workflow_id = serializers.UUIDField(read_only=True)
    tags = TagsField(read_only=True)

    class Meta:
        model = Execution
        fields = [
            "id",
            "workflow_id",
            "status",
            "progress",
            "message",
            "input_data",
            "result",
            "error",
            "execution_time",
            "created_at",
            "started_at",
            "finished_at",
            "tags",
        ]
        read_only_fields = fields


STREAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "array", "items": {}}]},
    "description": "What the node's current attempt streamed (ctx.stream): each stream's "
    "text, or its list of JSON pieces, by name.",
}


class NodeRunSerializer(serializers.ModelSerializer):
    streams = serializers.SerializerMethodField()
    streams_truncated = serializers.SerializerMethodField(
        help_text="The execution's streams reached EXECUTIONS_MAX_STREAM_BYTES: "
        "later pieces were not recorded."
    )

    class Meta:
        model = NodeRun
        fields = [
            "node_id",
            "node_type",
            "status",
            "attempts",
            "started_at",
            "finished_at",
            "duration",
            "output",
            "error",
            "streams",
            "streams_truncated",
        ]
        read_only_fields = fields

    def streamed(self, run: NodeRun) -> NodeStreamsRead:
        found = self.context.get("node_streams")
        if found is None:  # one node alone: its own read
            found = node_streams(run.execution_id, {run.node_id: run.attempts})
        return found.get(run.node_id, NodeStreamsRead())

    @extend_schema_field(STREAMS_SCHEMA)
    def get_streams(self, run: NodeRun) -> dict:
        return self.streamed(run).streams

    def get_streams_truncated(self, run: NodeRun) -> bool:
        return self.streamed(run).truncated


class ExecutionRunSerializer(serializers.Serializer):
    """One run of an execution (``executions.selectors.RunRead``)."""

    number = serializers.IntegerField(help_text="1 for the first run, 2 for a run again, ...")
    worker = serializers.CharField(
        source="worker_name", help_text="The process that ran it, host:pid."
    )
    worker_id = serializers.UUIDField(
        allow_null=True,
        help_text="Its process in GET /api/v1/workers; null once that row was pruned.",
    )
    worker_alive = serializers.BooleanField(
        help_text="Whether that process still sends its heartbeats."
    )
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True, help_text="null while it runs.")
    outcome = serializers.ChoiceField(
        choices=RunOutcome.choices,
        allow_null=True,
        help_text="How it ended: the execution's end, or requeued (its runner was lost or "
        "shut down, and the execution went back to run again); null while it runs.",
    )
    reason = serializers.CharField(help_text="Why a requeued run ended; empty otherwise.")


class ExecutionDetailSerializer(ExecutionSerializer):
    """One execution with the definition it runs, the state of each of its nodes and
    each of its runs."""

    definition = DefinitionField(
        read_only=True,
        help_text="The workflow's definition when the execution was created: what runs, "
        "whatever the workflow became since.",
    )
    nodes = NodeRunSerializer(many=True, read_only=True)
    runs = serializers.SerializerMethodField(
        help_text="Each time a runner claimed it, first first: which process, from when to "
        "when, and how the run ended."
    )

    class Meta(ExecutionSerializer.Meta):
        fields = [*ExecutionSerializer.Meta.fields, "definition", "nodes", "runs"]
        read_only_fields = fields

    @extend_schema_field(ExecutionRunSerializer(many=True))
    def get_runs(self, execution: Execution) -> list:
        return ExecutionRunSerializer(execution_runs(execution), many=True).data

    def to_representation(self, execution: Execution) -> dict:
        # Every node's streams in one read of the execution's chunks.
        attempts = {run.node_id: run.attempts for run in execution.nodes.all()}
        self.context["node_streams"] = node_streams(execution.id, attempts)
        return super().to_representation(execution)


class EventQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=0, default=0, help_text="Only events with a larger seq."
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=1000, default=100, help_text="Events per page."
    )
    wait = serializers.IntegerField(
        min_value=0,
        default=0,
        help_text="Long-poll: when there is no event after ``after`` yet, wait up to this "
        "many seconds (at most API_EVENTS_MAX_WAIT) for one before answering.",
    )

    def validate_wait(self, value: int) -> int:
        limit = settings.API_EVENTS_MAX_WAIT
        if value > limit:
            raise serializers.ValidationError(
                _("Ensure this value is less than or equal to %(limit)s (API_EVENTS_MAX_WAIT).")
                % {"limit": limit}
            )
        return value


class StrictUUIDField(serializers.UUIDField):
    """A UUID string; DRF's own field would also turn a JSON number into a UUID."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class ExecutionCreateSerializer(serializers.Serializer):
    workflow_id = StrictUUIDField()
    input_data = JSONObjectField(required=False, default=dict)
    tags = TagsField(required=False, default=list)

    def validate_workflow_id(self, value):
        if "workflows" in self.context:  # a batch read those it names at once
            workflow = self.context["workflows"].get(value)
        else:
            workflow = workflows_visible_to(self.context["request"].user).filter(id=value).first()
        if workflow is None:
            raise serializers.ValidationError(
                _(
                    "Workflow %(id)s does not exist or you may not run it; "
                    "list yours with GET /api/v1/workflows."
                )
                % {"id": value}
            )
        return workflow

    def validate_input_data(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError(
                _("input_data must be a JSON object, not %(type)s.")
                % {"type": type(value).__name__}
            )
        return value


class BatchItemsField(serializers.ListField):
    """A list of at most ``API_EXECUTION_BATCH_MAX_ITEMS`` items, counted before any
    item is looked at."""

    def to_internal_value(self, data):
        limit = settings.API_EXECUTION_BATCH_MAX_ITEMS
        if isinstance(data, list) and len(data) > limit:
            raise serializers.ValidationError(
                _(
                    "Too many items: %(count)d, the limit is %(limit)d per batch "
                    "(API_EXECUTION_BATCH_MAX_ITEMS). Split them into several batches."
                )
                % {"count": len(data), "limit": limit}
            )
        return super().to_internal_value(data)


class ExecutionBatchSerializer(serializers.Serializer):
    """The body of a batch. Each item is then validated as ``ExecutionCreateSerializer``
    validates a single create."""

    items = BatchItemsField(
        child=JSONObjectField(),
        allow_empty=False,
        help_text="What to start, in order: each item as the body of POST "
        "/api/v1/executions, at most API_EXECUTION_BATCH_MAX_ITEMS (1000) of them.",
    )


def workflow_ids_in(items: list) -> set[uuid.UUID]:
    """The well-formed workflow ids the items name (the others fail their own validation)."""
    ids = set()
    for item in items:
        value = item.get("workflow_id") if isinstance(item, dict) else None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                ids.add(uuid.UUID(value))
    return ids


class ExecutionFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ExecutionStatus.choices, required=False)
    workflow = serializers.UUIDField(required=False)
    tag = serializers.CharField(
        required=False,
        trim_whitespace=False,
        max_length=MAX_TAG_LENGTH,
        error_messages={
            "blank": TAG_LENGTH_RULE,
            "max_length": TAG_LENGTH_RULE,
        },
        help_text="Only the executions with this tag.",
    )
