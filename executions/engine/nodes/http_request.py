import json
from urllib.parse import SplitResult, urlsplit

import httpx
from django.conf import settings
from rest_framework import serializers

from executions.engine.fields import StrictCharField, StrictFloatField
from executions.engine.registry import NodeType, register
from executions.exceptions import NodeFailed

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


def host_allowed(url: SplitResult) -> bool:
    """Whether ``EXECUTIONS_HTTP_ALLOWED_HOSTS`` lets nodes call this URL's host."""
    allowed = settings.EXECUTIONS_HTTP_ALLOWED_HOSTS
    if "*" in allowed:
        return True
    host = (url.hostname or "").lower()
    port = url.port or (443 if url.scheme == "https" else 80)
    return host in allowed or f"{host}:{port}" in allowed


def refusal(url: SplitResult) -> str:
    return (
        f"host {url.hostname!r} is not allowed; an operator can add it to "
        "EXECUTIONS_HTTP_ALLOWED_HOSTS."
    )


class HttpRequestParams(serializers.Serializer):
    method = serializers.ChoiceField(choices=METHODS, default="GET")
    url = StrictCharField(max_length=2000)
    headers = serializers.DictField(child=StrictCharField(allow_blank=True), default=dict)
    json = serializers.JSONField(required=False)
    timeout_seconds = StrictFloatField(min_value=0.1, max_value=300, default=30)

    def validate_url(self, value: str) -> str:
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise serializers.ValidationError("must be an absolute http:// or https:// URL.")
        if not host_allowed(url):
            raise serializers.ValidationError(refusal(url))
        return value


@register
class HttpRequest(NodeType):
    """Calls an allowed HTTP endpoint without holding a thread.

    Output: ``{"status", "headers", "json"}`` when the response is JSON, else
    ``{"status", "headers", "text"}``. Redirects are not followed.
    """

    type_name = "http_request"
    params_serializer = HttpRequestParams

    async def run(self, ctx, params, data):
        url = urlsplit(params["url"])
        if not host_allowed(url):
            raise NodeFailed(refusal(url))
        limit = settings.EXECUTIONS_HTTP_MAX_RESPONSE_BYTES
        extra = {"json": params["json"]} if "json" in params else {}
        try:
            async with (
                httpx.AsyncClient(timeout=params["timeout_seconds"]) as client,
                client.stream(
                    params["method"], params["url"], headers=params["headers"], **extra
                ) as response,
            ):
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > limit:
                        raise NodeFailed(f"response is larger than {limit} bytes.")
        except httpx.HTTPError as exc:
            raise NodeFailed(f"{params['method']} {params['url']} failed: {exc!r}") from exc
        return {
            "status": response.status_code,
            "headers": dict(response.headers),
            **_body(response, body),
        }


def _body(response: httpx.Response, body: bytes) -> dict:
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if "json" in response.headers.get("content-type", ""):
        try:
            return {"json": json.loads(text)}
        except ValueError:
            pass
    return {"text": text}
