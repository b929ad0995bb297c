"""What the OpenAPI schema (``/api/v1/schema``) says beyond what DRF lets it infer.

The serializers here only describe responses; nothing validates with them.
The event shapes are those of ``executions.wire`` (and of docs/asyncapi.yaml).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers

from executions.api.serializers import (
    EventQuerySerializer,
    ExecutionCreateSerializer,
    ExecutionDetailSerializer,
    ExecutionFilterSerializer,
    ExecutionSerializer,
    WorkflowSerializer,
)
from executions.models import ExecutionStatus, NodeStatus

LOG_LEVELS = ["debug", "info", "warning", "error"]


def paths_without_trailing_slash(endpoints: list) -> list:
    """Preprocessing hook: list each path once, as the README writes it (no trailing
    slash; the server accepts both)."""
    return [
        (path.rstrip("/") or "/", regex, method, callback)
        for path, regex, method, callback in endpoints
    ]


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong and what to do about it.")


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Bearer <token>`.")


class EventSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    seq = serializers.IntegerField(min_value=1, help_text="1, 2, 3, ... with no gaps.")
    timestamp = serializers.CharField(
        help_text="When the event was recorded: ISO 8601, UTC, microseconds."
    )


class StatusEventSerializer(EventSerializer):
    type = serializers.ChoiceField(choices=["status"])
    status = serializers.ChoiceField(choices=ExecutionStatus.choices)
    progress = serializers.IntegerField(min_value=0, max_value=100)
    message = serializers.CharField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    execution_time = serializers.FloatField(allow_null=True)


class NodeEventSerializer(EventSerializer):
    type = serializers.ChoiceField(choices=["node"])
    node_id = serializers.CharField()
    node_type = serializers.CharField()
    status = serializers.ChoiceField(choices=NodeStatus.choices)
    attempt = serializers.IntegerField(min_value=0)
    output = serializers.JSONField(required=False, help_text="On `completed` only.")
    output_truncated = serializers.BooleanField(required=False)
    output_size = serializers.IntegerField(required=False)
    error = serializers.CharField(required=False, help_text="On `failed` only.")
    duration = serializers.FloatField(required=False, help_text="Seconds, when an attempt ended.")


class LogEventSerializer(EventSerializer):
    type = serializers.ChoiceField(choices=["log"])
    node_id = serializers.CharField(allow_null=True, help_text="null for the engine's lines.")
    level = serializers.ChoiceField(choices=LOG_LEVELS)
    message = serializers.CharField()


class EventPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")
    results = PolymorphicProxySerializer(
        component_name="Event",
        serializers={
            "status": StatusEventSerializer,
            "node": NodeEventSerializer,
            "log": LogEventSerializer,
        },
        resource_type_field_name="type",
        many=True,
    )


class BatchRequestSerializer(serializers.Serializer):
    items = ExecutionCreateSerializer(
        many=True,
        help_text="What to start, in order: each item as the body of `POST /api/v1/executions`; "
        "1 to `API_EXECUTION_BATCH_MAX_ITEMS` (1000) of them.",
    )


class BatchCreatedSerializer(serializers.Serializer):
    results = ExecutionSerializer(
        many=True, help_text="The executions started, one per item and in their order."
    )


class BatchInvalidSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="How many items are invalid; none was started.")
    results = serializers.ListField(
        child=serializers.DictField(),
        help_text="One per item, in order: `{}` for a valid item, else its errors as a single "
        'create would answer them, e.g. `{"input_data": ["input_data must be a JSON object, '
        'not list."]}`.',
    )


INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="The request does not fit: the body names each wrong field and says how to "
    'fix it, e.g. `{"input_data": ["input_data must be a JSON object, not list."]}`.',
)
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object, or not yours.")
NOT_OWNER = OpenApiResponse(
    ErrorSerializer,
    description="You may read this workflow (staff) but not change it: only its owner or a "
    "superuser may.",
)
TOO_MANY = OpenApiResponse(
    ErrorSerializer,
    description="Too many executions started this minute (`API_EXECUTION_CREATE_RATE`, with "
    "`Retry-After`), or too many of yours pending or running at once "
    "(`EXECUTIONS_MAX_ACTIVE_PER_USER`); nothing was stored.",
)

TOKEN_OPERATIONS = {
    "post": extend_schema(
        summary="Get your API token",
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, 400: INVALID},
        auth=[],
    )
}

WORKFLOW_OPERATIONS = {
    "list": extend_schema(summary="List your workflows"),
    "create": extend_schema(
        summary="Create a workflow", responses={201: WorkflowSerializer, 400: INVALID}
    ),
    "retrieve": extend_schema(
        summary="One workflow", responses={200: WorkflowSerializer, 404: NOT_FOUND}
    ),
    "update": extend_schema(
        summary="Replace a workflow",
        responses={200: WorkflowSerializer, 400: INVALID, 403: NOT_OWNER, 404: NOT_FOUND},
    ),
    "partial_update": extend_schema(
        summary="Change some fields of a workflow",
        responses={200: WorkflowSerializer, 400: INVALID, 403: NOT_OWNER, 404: NOT_FOUND},
    ),
    "destroy": extend_schema(
        summary="Delete a workflow",
        responses={
            204: None,
            403: NOT_OWNER,
            404: NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The workflow has executions."),
        },
    ),
}

EXECUTION_OPERATIONS = {
    "list": extend_schema(
        summary="List your executions, newest first", parameters=[ExecutionFilterSerializer]
    ),
    "create": extend_schema(
        summary="Start an execution",
        request=ExecutionCreateSerializer,
        responses={201: ExecutionSerializer, 400: INVALID, 429: TOO_MANY},
    ),
    "batch": extend_schema(
        summary="Start many executions at once",
        description="Up to `API_EXECUTION_BATCH_MAX_ITEMS` (1000) items, each validated as "
        "`POST /api/v1/executions` validates one, stored in one transaction: all of them, "
        "or none when any item is invalid (400, with each item's errors in `results`). "
        "They count as that many creates against `API_EXECUTION_CREATE_RATE` and "
        "`EXECUTIONS_MAX_ACTIVE_PER_USER`. Each is pushed and dispatched after the commit "
        "as a single create is.",
        request=BatchRequestSerializer,
        responses={
            201: BatchCreatedSerializer,
            400: OpenApiResponse(
                BatchInvalidSerializer,
                description="Some items are invalid (each item's errors in `results`), or the "
                'body is (`{"items": ["…"]}`: not a list, empty, more than '
                "`API_EXECUTION_BATCH_MAX_ITEMS`); nothing was stored.",
            ),
            429: TOO_MANY,
        },
    ),
    "retrieve": extend_schema(
        summary="One execution with its definition and its nodes",
        responses={200: ExecutionDetailSerializer, 404: NOT_FOUND},
    ),
    "cancel": extend_schema(
        summary="Cancel an execution",
        request=None,
        responses={
            202: ExecutionSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The execution has already ended."),
        },
    ),
    "events": extend_schema(
        summary="The execution's stored events, in pages; long-poll with ?wait=",
        description="The events after `?after=N`, oldest first, exactly as the WebSocket "
        "sends them; follow `next` for the rest. With `?wait=S` (up to API_EVENTS_MAX_WAIT, "
        "30 s), when there is no event after N yet and the execution has not ended, the "
        "answer comes as soon as one is recorded, or with no results after S seconds.",
        parameters=[EventQuerySerializer],
        responses={
            200: EventPageSerializer,
            400: INVALID,
            404: NOT_FOUND,
            429: OpenApiResponse(
                ErrorSerializer,
                description="Too many long-polls of yours waiting (REALTIME_MAX_SOCKETS_PER_USER).",
            ),
        },
    ),
}


STREAM_ERRORS = {
    str(status): {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StreamError"}}},
    }
    for status, text in (
        (400, "A bad `last_seq`, `Last-Event-ID` or stream request (code 4400)."),
        (401, "Not authenticated, or the ticket is unknown, expired or used (4401)."),
        (403, "The session's origin is not allowed (4403)."),
        (404, "No such execution, or not yours (4404)."),
        (429, "Too many open streams and sockets of yours (4429), or handshakes (4429)."),
        (503, "The server could not read the database just now: retry (1013)."),
    )
}
EVENT_STREAM = {
    "description": "`text/event-stream`: per message `id: <position>`, `event: <type>`, "
    "`data: <the socket's JSON message>`; a comment every 15 s (REALTIME_SSE_HEARTBEAT). "
    "The messages are those of docs/asyncapi.yaml. An `error` event ends the stream when "
    "the server cuts it (e.g. a reader that stopped reading); reconnect with Last-Event-ID.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The `id` of the last event received (browsers send it on reconnect): "
    "the stream resumes right after it, missing nothing.",
}
TICKET = {
    "name": "ticket",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "A one-time ticket from POST /api/v1/ws-tickets, for EventSource, "
    "which cannot send an Authorization header.",
}
STREAM_PATHS = {
    "/api/v1/executions/{id}/stream": {
        "get": {
            "operationId": "executions_stream",
            "summary": "Follow one execution as Server-Sent Events",
            "description": "The stream of /api/v1/ws/executions/{id}: the snapshot "
            "(or, with `?last_seq=N` or `Last-Event-ID: N`, every event after N), then each "
            "event as it is recorded; the response ends after the terminal event. Each "
            "event's `id` is its `seq`.",
            "tags": ["executions"],
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                },
                {
                    "name": "last_seq",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "Resume after this seq (Last-Event-ID wins when both come).",
                },
                TICKET,
                LAST_EVENT_ID,
            ],
            "responses": {"200": EVENT_STREAM, **STREAM_ERRORS},
            "security": [{"tokenAuth": []}, {"cookieAuth": []}],
        }
    },
    "/api/v1/stream": {
        "get": {
            "operationId": "stream_many",
            "summary": "Follow many executions and the executions feed as Server-Sent Events",
            "description": "The subscriptions of /api/v1/ws, named in the query. Each "
            "event's `id` is the stream's position, `seq,seq,...;cursor`: the last seq of "
            "each execution in the order of `executions` (empty: none yet) and the feed's "
            "last cursor; sent back as Last-Event-ID, it resumes each part exactly.",
            "tags": ["executions"],
            "parameters": [
                {
                    "name": "executions",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Comma-separated execution ids, at most "
                    "REALTIME_MAX_SUBSCRIPTIONS (and REALTIME_MAX_SUBSCRIBES_PER_SECOND).",
                },
                {
                    "name": "feed",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["executions"]},
                },
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "The feed's status filter, comma-separated.",
                },
                {
                    "name": "workflow_id",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "format": "uuid"},
                },
                {"name": "tag", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "The feed's cursor to start from.",
                },
                TICKET,
                LAST_EVENT_ID,
            ],
            "responses": {"200": EVENT_STREAM, **STREAM_ERRORS},
            "security": [{"tokenAuth": []}, {"cookieAuth": []}],
        }
    },
}


def event_stream_paths(result: dict, generator, request, public) -> dict:
    """Postprocessing hook: the Server-Sent Events endpoints, which are served beside
    DRF (``realtime.sse``), not by a view it knows."""
    result.setdefault("paths", {}).update(STREAM_PATHS)
    result.setdefault("components", {}).setdefault("schemas", {})["StreamError"] = {
        "type": "object",
        "properties": {
            "detail": {"type": "string", "description": "What went wrong and what to do."},
            "code": {"type": "integer", "description": "The socket's close code for it."},
        },
        "required": ["detail", "code"],
    }
    return result
