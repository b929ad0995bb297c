"""The REST API's rates and request bounds."""

from collections.abc import Mapping
from typing import Any

from executions.env import integer, rate


def same_as_login_rate(values: Mapping[str, Any]) -> str:
    return values["API_LOGIN_RATE"]


SETTINGS = [
    rate(
        "API_LOGIN_RATE",
        "10/minute",
        (
            "login attempts per client address on the dashboard's (`/login/`) and the admin's "
            "(`/admin/login/`) forms together (empty: no limit)"
        ),
    ),
    rate(
        "API_LOGIN_USERNAME_RATE",
        "5/minute",
        (
            "failed logins per username, over the token endpoint and both login forms together; "
            "successful ones do not count (empty: no limit)"
        ),
    ),
    rate(
        "API_TOKEN_RATE",
        same_as_login_rate,
        "`POST /api/v1/auth/token` requests per client address (empty: no limit)",
        shown="`API_LOGIN_RATE` (`10/minute`)",
    ),
    rate(
        "API_EXECUTION_CREATE_RATE",
        "1000/minute",
        (
            "executions started per user, by `POST /api/v1/executions` and `POST "
            "/api/v1/executions/batch` together (a batch of N counts N)"
        ),
    ),
    integer(
        "API_EXECUTION_BATCH_MAX_ITEMS",
        "1000",
        "items one `POST /api/v1/executions/batch` may hold; more: 400",
        minimum=1,
    ),
    # daphne reads a whole body before the application sees it: put the same limit
    # in front of it too (nginx: client_max_body_size).
    integer(
        "API_MAX_BODY_BYTES",
        "1048576",
        "largest request body (1 MiB); larger: JSON 413",
        unit="bytes",
        minimum=1,
    ),
    integer(
        "API_MAX_JSON_DEPTH",
        "64",
        "deepest nesting of arrays and objects in a JSON request body (400 beyond)",
        minimum=1,
    ),
    integer(
        "API_EVENTS_MAX_WAIT",
        "30",
        "the longest `?wait=` of a long-poll on `GET /api/v1/executions/{id}/events`, in seconds",
        unit="seconds",
        minimum=0,
    ),
]
