"""Limits on what one client may ask of the REST API: request rates and body sizes."""

import contextlib
import hashlib
import math
import unicodedata
from collections.abc import Callable, Mapping

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

PERIODS = {
    "s": gettext_lazy("second"),
    "m": gettext_lazy("minute"),
    "h": gettext_lazy("hour"),
    "d": gettext_lazy("day"),
}


class SettingRateThrottle(SimpleRateThrottle):
    """A throttle whose rate is the Django setting ``rate_setting``, read per request.

    DRF's own throttles read their rates once, at import, from
    ``DEFAULT_THROTTLE_RATES``; reading the setting here keeps
    ``override_settings`` and per-deployment environment variables working.
    """

    rate_setting: str
    description: str  # what is counted, e.g. "token requests" (gettext_lazy)

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting) or None

    def explain(self, wait: float | None) -> str:
        values = {
            "what": self.description,
            "count": self.num_requests,
            "period": PERIODS[self.rate.split("/")[1][0]],
            "setting": self.rate_setting,
        }
        if wait is None:
            return _("Too many %(what)s: at most %(count)d per %(period)s (%(setting)s).") % values
        return _(
            "Too many %(what)s: at most %(count)d per %(period)s (%(setting)s). "
            "Try again in %(wait)d s."
        ) % {**values, "wait": math.ceil(wait)}


class PerUserThrottle(SettingRateThrottle):
    def get_cache_key(self, request, view) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class PerClientThrottle(SettingRateThrottle):
    def get_cache_key(self, request, view) -> str:
        # REMOTE_ADDR only: DRF's get_ident would trust any X-Forwarded-For a
        # client sends. project.clientaddr sets it from TRUSTED_PROXY_HOPS.
        ident = request.META.get("REMOTE_ADDR") or "unknown"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenRateThrottle(PerClientThrottle):
    scope = "auth_token"
    rate_setting = "API_TOKEN_RATE"
    description = gettext_lazy("token requests from this address")


class LoginRateThrottle(PerClientThrottle):
    """Attempts on the dashboard's and the admin's login forms, together, per address."""

    scope = "login"
    rate_setting = "API_LOGIN_RATE"
    description = gettext_lazy("login attempts from this address")


class FailedLoginThrottle(SettingRateThrottle):
    """Failed logins per username, over the token endpoint and the login forms together.

    An attempt takes its place (an atomic increment in a fixed window) before
    the password is checked, so parallel guesses cannot overshoot, and a
    successful one gives it back (``succeeded``): only failures count, so a
    user who knows their password never uses up their own limit.
    """

    scope = "login_username"
    rate_setting = "API_LOGIN_USERNAME_RATE"
    description = gettext_lazy("failed logins for this username")

    def __init__(self, username: str):
        super().__init__()
        self.username = username_key(username)
        self.taken: str | None = None
        self.retry_after: float | None = None

    def allow_request(self, request, view) -> bool:
        if self.rate is None or not self.username:
            return True
        window = int(self.timer() // self.duration)
        key = self.cache_format % {"scope": self.scope, "ident": f"{self.username}_{window}"}
        self.cache.add(key, 0, self.duration)
        try:
            count = self.cache.incr(key)
        except ValueError:  # expired since the add
            self.cache.add(key, 1, self.duration)
            count = 1
        if count > self.num_requests:
            self._give_back(key)
            self.retry_after = (window + 1) * self.duration - self.timer()
            return False
        self.taken = key
        return True

    def succeeded(self) -> None:
        """The attempt logged in: it does not count."""
        if self.taken is not None:
            self._give_back(self.taken)
            self.taken = None

    def wait(self) -> float | None:
        return self.retry_after

    def _give_back(self, key: str) -> None:
        with contextlib.suppress(ValueError):  # expired meanwhile: nothing to give back
            self.cache.decr(key)


def username_key(username: str) -> str:
    """The username as Django's login form cleans it, case-folded and hashed (short, safe keys)."""
    if not username:
        return ""
    cleaned = unicodedata.normalize("NFKC", username.strip()).casefold()
    return hashlib.sha256(cleaned.encode("utf-8", "surrogatepass")).hexdigest() if cleaned else ""


def username_in(data) -> str:
    """The ``username`` a token request sends, as its serializer will read it ("" if none)."""
    value = data.get("username") if isinstance(data, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value)


class ExecutionCreateThrottle(PerUserThrottle):
    """Executions started per user; a batch of N counts as N single creates."""

    scope = "execution_create"
    rate_setting = "API_EXECUTION_CREATE_RATE"
    description = gettext_lazy("executions started")

    def __init__(self, executions: int = 1):
        super().__init__()
        self.executions = executions

    def allow_request(self, request, view) -> bool:
        if self.executions == 1:
            return super().allow_request(request, view)
        if self.rate is None or (key := self.get_cache_key(request, view)) is None:
            return True
        self.key, self.now = key, self.timer()
        self.history = [t for t in self.cache.get(key, []) if t > self.now - self.duration]
        if len(self.history) + self.executions > self.num_requests:
            return self.throttle_failure()
        self.history[:0] = [self.now] * self.executions  # newest first, as DRF keeps it
        self.cache.set(key, self.history, self.duration)
        return True

    def wait(self) -> float | None:
        if self.executions == 1:
            return super().wait()
        if self.executions > self.num_requests:
            return None  # never: the batch is larger than the whole rate
        # Until enough of those counted have aged out of the window.
        must_age = len(self.history) + self.executions - self.num_requests
        return max(0.0, self.duration - (self.now - self.history[-must_age]))

    def explain(self, wait: float | None) -> str:
        if self.executions <= (self.num_requests or 0):
            return super().explain(wait)
        return _(
            "Too many executions in one batch: %(count)d, while at most %(limit)d may be "
            "started per %(period)s (%(setting)s). Split the batch."
        ) % {
            "count": self.executions,
            "limit": self.num_requests,
            "period": PERIODS[self.rate.split("/")[1][0]],
            "setting": self.rate_setting,
        }


class ExplainedThrottlingMixin:
    """For views: a throttled request gets a 429 that names the limit and when to retry."""

    def check_throttles(self, request) -> None:
        for throttle in self.get_throttles():
            check_throttle(throttle, request, self)


def check_throttle(throttle: SettingRateThrottle, request, view) -> None:
    """Raise DRF's 429, with the limit and its setting named, if ``throttle`` refuses."""
    if not throttle.allow_request(request, view):
        wait = throttle.wait()
        raise Throttled(wait, detail=throttle.explain(wait))


class RequestBodyLimitMiddleware:
    """Answers a body over ``API_MAX_BODY_BYTES`` with a JSON 413 before any view reads it.

    It judges by ``Content-Length``: a body without one is read as empty by
    Django, so nothing larger can reach a view. It runs before
    ``LocaleMiddleware``, so it picks the answer's language itself.
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
            with translation.override(translation.get_language_from_request(request)):
                detail = _(
                    "Request body too large: %(length)d bytes, the limit is %(limit)d "
                    "bytes (API_MAX_BODY_BYTES). Send less data, e.g. smaller input_data."
                ) % {"length": length, "limit": limit}
            return JsonResponse({"detail": detail}, status=413)
        return self.get_response(request)
