"""The settings of Django's own wiring and of the HTTP server, each declared once.

``project.settings`` reads them from the environment, with every app's own
(``every_setting``).
"""

from executions import conf as executions_conf
from executions.env import Setting, boolean, choice, integer, text, text_list
from realtime import conf as realtime_conf

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

SETTINGS = [
    boolean("DEBUG", False, "Django debug mode; `scripts/quickstart.sh` turns it on"),
    text("SECRET_KEY", "", "required when `DEBUG` is off", shown="none"),
    text_list(
        "ALLOWED_HOSTS",
        "localhost,127.0.0.1,[::1]",
        (
            "comma-separated host names served; also the origins allowed for cookie-authenticated "
            "sockets, on the scheme and port the socket was reached on (`*` allows only the "
            "socket's own `Host`)"
        ),
    ),
    text_list(
        "CSRF_TRUSTED_ORIGINS",
        "",
        (
            "extra origins (`https://app.example.com`, or `https://*.example.com` for a domain "
            "and its subdomains) trusted for cookies"
        ),
    ),
    boolean("SECURE_SSL_REDIRECT", False, "redirect plain-HTTP requests to HTTPS"),
    boolean("SECURE_COOKIES", False, "session, CSRF and language cookies only over HTTPS"),
    integer(
        "SECURE_HSTS_SECONDS",
        "0",
        "`Strict-Transport-Security` max-age",
        unit="seconds",
        minimum=0,
    ),
    boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", False, "HSTS for the subdomains too"),
    boolean("SECURE_HSTS_PRELOAD", False, "ask to be on browsers' HSTS preload list"),
    integer(
        "TRUSTED_PROXY_HOPS",
        "0",
        (
            "proxies in front that append to `X-Forwarded-For` (one nginx: `1`); the client "
            "address is the entry the outermost of them added, else the peer's; see [Scaling "
            "out](#scaling-out)"
        ),
        minimum=0,
    ),
    text(
        "DATABASE_URL",
        "",
        "`postgres://user:pass@host:5432/name` for PostgreSQL",
        shown="`sqlite:///db.sqlite3`",
    ),
    text(
        "REDIS_URL",
        "",
        (
            "`redis://host:6379/0` selects the Redis pub/sub channel layer, Celery workers, and "
            "the cache that keeps throttle counts across processes"
        ),
        shown="unset",
    ),
    text(
        "STATIC_ROOT",
        "",
        "where `collectstatic` puts files; unset, static files are served from the apps",
        shown="unset",
    ),
    text_list(
        "EXTRA_INSTALLED_APPS",
        "",
        "comma-separated apps to add, e.g. ones that register node types",
    ),
    choice(
        "LOG_FORMAT",
        "text",
        (
            "`json`: one JSON object a line (time, level, logger, message, and `request_id`, "
            "`execution_id`, `node_id`, `worker` where they apply; daphne's access log too); "
            "every response carries `X-Request-ID` (a trusted proxy's, with `TRUSTED_PROXY_HOPS` "
            "above 0, else a new one), and the lines of the execution a request created carry it"
        ),
        choices=("text", "json"),
    ),
    choice("LOG_LEVEL", "INFO", "the root logger's level", choices=LOG_LEVELS),
    integer(
        "API_MAX_CONCURRENT_REQUESTS",
        "16",
        (
            "HTTP requests one server process runs at once, in as many long-lived threads, each "
            "keeping its database connection for `CONN_MAX_AGE` (60 s); more wait their turn "
            "instead of opening connections past PostgreSQL's `max_connections` (0: no limit, 32 "
            "threads)"
        ),
        minimum=0,
    ),
]


def every_setting() -> list[Setting]:
    """Every declared setting, in the README table's order; a default may depend on
    a setting before it."""
    return [*SETTINGS, *executions_conf.SETTINGS, *realtime_conf.SETTINGS]
