"""Limits on what one client may ask of the REST API: request rates and body sizes."""

import math
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

PERIODS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


class SettingRateThrottle(SimpleRateThrottle):
    """A throttle whose rate is the Django setting ``rate_setting``, read per request.

    DRF's own throttles read their rates once, at import, from
    ``DEFAULT_THROTTLE_RATES``; reading the setting here keeps
    ``override_settings`` and per-deployment environment variables working.
    """

    rate_setting: str
    description: str  # what is counted, e.g. "token requests"

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting) or None

    def explain(self, wait: float | None) -> str:
        period = PERIODS[self.rate.split("/")[1][0]]
        retry = f" Try again in {math.ceil(wait)} s." if wait is not None else ""
        return (
            f"Too many {self.description}: at most {self.num_requests} per {period} "
            f"({self.rate_setting}).{retry}"
        )


class PerUserThrottle(SettingRateThrottle):
    def get_cache_key(self, request, view) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class PerClientThrottle(SettingRateThrottle):
    def get_cache_key(self, request, view) -> str:
        # The peer address only: DRF's get_ident would trust any X-Forwarded-For
        # a client sends. Behind a proxy, daphne --proxy-headers sets the address.
        ident = request.META.get("REMOTE_ADDR") or "unknown"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenRateThrottle(PerClientThrottle):
    scope = "auth_token"
    rate_setting = "API_TOKEN_RATE"
    description = "token requests from this address"


class ExecutionCreateThrottle(PerUserThrottle):
    scope = "execution_create"
    rate_setting = "API_EXECUTION_CREATE_RATE"
    description = "executions started"


class ExplainedThrottlingMixin:
    """For views: a throttled request gets a 429 that names the limit and when to retry."""

    def check_throttles(self, request) -> None:
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                wait = throttle.wait()
                raise Throttled(wait, detail=throttle.explain(wait))


class RequestBodyLimitMiddleware:
    """Answers a body over ``API_MAX_BODY_BYTES`` with a JSON 413 before any view reads it.

    It judges by ``Content-Length``: a body without one is read as empty by
    Django, so nothing larger can reach a view.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.API_MAX_BODY_BYTES
        if length > limit:
            return JsonResponse(
                {
                    "detail": f"Request body too large: {length} bytes, the limit is {limit} "
                    "bytes (API_MAX_BODY_BYTES). Send less data, e.g. smaller input_data."
                },
                status=413,
            )
        return self.get_response(request)
