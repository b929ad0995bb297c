"""The REST calls, as what to send and how to read the answer, for both clients."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from workflow_push.errors import ApiError
from workflow_push.types import Id, JSONObject

# The largest page the events endpoint serves.
EVENTS_PAGE = 1000
USER_AGENT = "workflow-push-python/0.1"


@dataclass(frozen=True)
class Call:
    """One request: ``path`` under the base URL (or an absolute ``next`` URL)."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None


def headers(token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    chosen = {"Accept": "application/json", "User-Agent": USER_AGENT, **(extra or {})}
    if token:
        chosen["Authorization"] = f"Bearer {token}"
    return chosen


def socket_headers(chosen: dict[str, str]) -> dict[str, str]:
    """The headers of a socket's handshake: websockets writes its own User-Agent."""
    return {k: v for k, v in chosen.items() if k not in ("Accept", "User-Agent")}


def url(base_url: str, path: str) -> str:
    return path if "://" in path else base_url.rstrip("/") + path


def next_url(base_url: str, next_link: str | None) -> str | None:
    """A page's ``next`` on the server the client talks to: the server builds it from
    the host it saw, which behind a proxy may not be one the client can reach."""
    if not next_link:
        return None
    base, link = urlsplit(base_url), urlsplit(next_link)
    return urlunsplit((base.scheme, base.netloc, link.path, link.query, ""))


def answer(call: Call, response: httpx.Response) -> Any:
    """The JSON of a successful answer (None when it has no body); an ``ApiError`` else."""
    if response.is_success:
        return response.json() if response.content else None
    try:
        body = response.json()
    except ValueError:
        body = response.text.strip()[:500] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    code = body.get("code") if isinstance(body, dict) else None
    raise ApiError(
        call.method,
        str(response.request.url),
        response.status_code,
        detail,
        code=code if isinstance(code, int) else None,
        retry_after=retry_after(response),
    )


def is_event_stream(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


def retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def clean(params: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) for key, value in params.items() if value is not None}


# The calls


def list_workflows() -> Call:
    return Call("GET", "/api/v1/workflows")


def get_workflow(workflow_id: Id) -> Call:
    return Call("GET", f"/api/v1/workflows/{workflow_id}")


def create_workflow(
    name: str, definition: JSONObject, description: str, retry_on_worker_loss: bool | None
) -> Call:
    body: dict[str, Any] = {"name": name, "definition": definition, "description": description}
    if retry_on_worker_loss is not None:
        body["retry_on_worker_loss"] = retry_on_worker_loss
    return Call("POST", "/api/v1/workflows", body=body)


def update_workflow(workflow_id: Id, fields: dict[str, Any]) -> Call:
    changed = {key: value for key, value in fields.items() if value is not None}
    return Call("PATCH", f"/api/v1/workflows/{workflow_id}", body=changed)


def delete_workflow(workflow_id: Id) -> Call:
    return Call("DELETE", f"/api/v1/workflows/{workflow_id}")


def create_execution(
    workflow_id: Id, input_data: JSONObject | None, tags: list[str] | None
) -> Call:
    body = {"workflow_id": str(workflow_id), "input_data": input_data or {}, "tags": tags or []}
    return Call("POST", "/api/v1/executions", body=body)


def get_execution(execution_id: Id) -> Call:
    return Call("GET", f"/api/v1/executions/{execution_id}")


def list_executions(status: str | None, workflow_id: Id | None, tag: str | None) -> Call:
    params = clean({"status": status, "workflow": workflow_id, "tag": tag})
    return Call("GET", "/api/v1/executions", params=params)


def cancel(execution_id: Id) -> Call:
    return Call("POST", f"/api/v1/executions/{execution_id}/cancel")


def events(execution_id: Id, after: int) -> Call:
    params = {"after": after, "limit": EVENTS_PAGE}
    return Call("GET", f"/api/v1/executions/{execution_id}/events", params=params)
