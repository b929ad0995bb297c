"""The login forms of the dashboard and the admin, under the login limits.

Before a form checks a password it counts the attempt against its client
address (``API_LOGIN_RATE``) and takes a place in its username's failures
(``API_LOGIN_USERNAME_RATE``, shared with ``POST /api/v1/auth/token``), which a
successful login gives back. Past either limit the form is shown again with
the reason, answered 429 with ``Retry-After``.
"""

import math
from collections.abc import Callable
from functools import wraps

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse

from executions.api.limits import FailedLoginThrottle, LoginRateThrottle, SettingRateThrottle


class LimitedLoginMixin:
    """For an ``AuthenticationForm``: the login limits, checked before the password."""

    throttled_message: str | None = None
    retry_after: float | None = None

    def clean(self):
        self._check(LoginRateThrottle())
        per_username = FailedLoginThrottle(self.cleaned_data.get("username") or "")
        self._check(per_username)
        cleaned = super().clean()  # bad credentials raise: a failure
        per_username.succeeded()
        return cleaned

    def _check(self, throttle: SettingRateThrottle) -> None:
        if not throttle.allow_request(self.request, None):
            self.retry_after = throttle.wait()
            self.throttled_message = throttle.explain(self.retry_after)
            raise forms.ValidationError(self.throttled_message, code="throttled")


class LoginForm(LimitedLoginMixin, AuthenticationForm):
    """The dashboard's login form."""


class AdminLoginForm(LimitedLoginMixin, AdminAuthenticationForm):
    """The admin's login form (``admin.site.login_form``)."""


def login_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a login view: a form refused by the login limits is answered 429 with Retry-After."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if getattr(form, "throttled_message", None):
            response.status_code = 429
            response["Retry-After"] = str(max(1, math.ceil(form.retry_after or 0)))
        return response

    return wrapper
