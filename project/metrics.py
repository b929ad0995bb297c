"""``GET /metrics`` on each server process, and the HTTP requests it measures.

``MetricsRoute`` answers ``/metrics`` in front of everything else, as the
health checks are (no authentication, throttle or request limit): to a scrape
that may read the metrics (``executions.metrics.access``, with the client's
address as ``TRUSTED_PROXY_HOPS`` settled it) the page of this process's
registry, which its runner's measures share in the embedded mode. Every other
request is noted with the moment it arrived, so that
``RequestMetricsMiddleware`` times it from there: its wait for one of the
request threads (``API_MAX_CONCURRENT_REQUESTS``) included.
"""

import asyncio
import time

from django.conf import settings
from prometheus_client import Counter, Histogram

from executions.metrics import Labelled, bounded, loop_lag, metrics_access_problem, metrics_enabled
from executions.metrics import metrics_page as page
from realtime.auth import header

METRICS_PATH = "/metrics"
# The scope key of the moment (``time.perf_counter``) a request arrived.
ARRIVED = "metrics_arrived"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "workflows_http_requests",
    "HTTP requests Django answered, by route (the URL pattern's name), method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "workflows_http_request_duration_seconds",
    "From a request's arrival to Django's response, its wait for a request thread "
    "included, by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
_requests = Labelled(HTTP_REQUESTS)
_durations = Labelled(HTTP_DURATION)


class MetricsRoute:
    """ASGI: ``/metrics`` answered here; other HTTP requests go to ``app``, noted
    with their arrival."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope.get("path") == METRICS_PATH:
            return await serve_metrics(scope, send)
        if metrics_enabled():
            scope = dict(scope, **{ARRIVED: time.perf_counter()})
        return await self.app(scope, receive, send)


async def serve_metrics(scope, send) -> None:
    if not metrics_enabled():
        return await respond(send, 404, b"Metrics are off in this process (METRICS_ENABLED).\n")
    if scope.get("method") not in ("GET", "HEAD"):
        return await respond(send, 405, b"Metrics are read with GET.\n")
    client = scope.get("client")
    problem = metrics_access_problem(
        address=str(client[0]) if client else None, authorization=header(scope, b"authorization")
    )
    if problem is not None:
        return await respond(send, 403, problem.encode() + b"\n")
    loop_lag.watch("server")
    # In a thread: the page of a busy process is a few milliseconds of work
    # that would otherwise hold back every socket's sends.
    body, content_type = await asyncio.to_thread(page)
    await respond(send, 200, b"" if scope["method"] == "HEAD" else body, content_type)


async def respond(send, status: int, body: bytes, content_type: str = "text/plain") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestMetricsMiddleware:
    """Counts each request by route, method and status, and times it by route."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not metrics_enabled():
            return self.get_response(request)
        arrived = getattr(request, "scope", {}).get(ARRIVED) or time.perf_counter()
        response = self.get_response(request)
        route = route_of(request)
        method = bounded(request.method, METHODS)
        _requests(route, method, str(response.status_code)).inc()
        _durations(route).observe(time.perf_counter() - arrived)
        return response


def route_of(request) -> str:
    """The request's URL pattern by name (``execution-detail``, ``dashboard:execution``):
    one of a fixed set, whatever the path held."""
    match = request.resolver_match
    if match is not None:
        return match.view_name or match.route or "unnamed"
    static = settings.STATIC_URL or ""
    if static and request.path_info.lstrip("/").startswith(static.lstrip("/")):
        return "static"
    return "unmatched"
