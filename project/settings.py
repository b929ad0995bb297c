"""Settings for the workflow service, read from environment variables.

Every value has a safe default for the embedded mode (SQLite, in-memory
channel layer, executions in-process). Setting ``DATABASE_URL`` and
``REDIS_URL`` moves the same code onto PostgreSQL and Redis.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set the SECRET_KEY environment variable, or set DEBUG=1 for local development."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS in production (all off by default, for plain-HTTP development and
# tests). Behind a proxy that terminates TLS, TRUSTED_PROXY_HOPS makes its
# X-Forwarded-Proto the request's scheme (project/clientaddr.py).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS") or "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = LANGUAGE_COOKIE_SECURE = env_bool("SECURE_COOKIES")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "executions",
    "realtime",
    "dashboard",
    # Apps that add node types (see README, "Custom node types"), by module path.
    *env_list("EXTRA_INSTALLED_APPS", []),
]

MIDDLEWARE = [
    # First: everything after it, and what it logs, knows the request's id.
    "project.requestid.RequestIdMiddleware",
    # Counts and times every request by route and status (project.metrics).
    "project.metrics.RequestMetricsMiddleware",
    "executions.api.limits.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language of each request: the dashboard's choice (its cookie), else
    # the browser's Accept-Language; English when neither is one of LANGUAGES.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite file by default; DATABASE_URL=postgres://... for PostgreSQL.
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "executions.sqlite"
    # Many threads write at once (executions, sockets, REST): take the write
    # lock at BEGIN so nothing has to upgrade a read lock, queue writers of
    # one process on a lock (executions.sqlite), wait for a busy database
    # instead of failing, and let readers run beside the writer.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file so that concurrency behaves as it does in production
    # (a shared-cache in-memory database ignores the busy timeout).
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "executions.postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Seconds a persistent connection may sit unused before its next use pings it
# first (executions.postgresql); 0: a ping before every request's first query.
DATABASE_HEALTH_CHECK_AFTER_IDLE = float(os.environ.get("DATABASE_HEALTH_CHECK_AFTER_IDLE", "1"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The dashboard and the API's messages come in these languages (README,
# "Languages"); stored data (an execution's message, its log) stays as recorded.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The dashboard's language switch keeps its choice in this cookie for a year.
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# daphne serves no static files: WhiteNoise does, straight from the apps'
# static folders, so no collectstatic step is needed to start. Set
# STATIC_ROOT and run collectstatic to serve compressed copies instead.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True
# The JavaScript client package (clients/js, "workflow-push"), which the
# dashboard imports, served as it is under /static/workflow-push/.
STATICFILES_DIRS = [("workflow-push", BASE_DIR / "clients" / "js" / "src")]
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:executions"
LOGOUT_REDIRECT_URL = "dashboard:login"

# Channel layer: in-memory in one process; Redis pub/sub when REDIS_URL is set.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # One PUBLISH per event, whatever the number of subscribers.
            "BACKEND": "realtime.layers.BoundedRedisPubSubChannelLayer",
            "CONFIG": {
                # redis-py defaults to a 5 s socket timeout, which would kill
                # every idle subscriber connection.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": None,
                        "socket_connect_timeout": 5,
                        "max_connections": int(os.environ.get("REDIS_MAX_CONNECTIONS", "50")),
                        "health_check_interval": 30,
                    }
                ],
                # Messages waiting for one socket; past this the oldest are
                # dropped and the socket fills the gap from the event log.
                "capacity": 1000,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.LocalChannelLayer",
            "CONFIG": {"capacity": 1000, "expiry": 60},
        }
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "executions.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "executions.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# Throttles and the cache that keeps their counts: Redis (shared by every
# process) when REDIS_URL is set, else this process's memory.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "workflows",
        }
    }
# Proxies in front of the servers that append to X-Forwarded-For (one nginx:
# 1). The client is the address the outermost of them saw; 0 trusts no
# header and takes the peer's address (project/clientaddr.py).
TRUSTED_PROXY_HOPS = max(0, int(os.environ.get("TRUSTED_PROXY_HOPS", "0")))
# Rates ("N/second|minute|hour|day"; empty means unlimited). Login attempts
# per client address on the dashboard's and the admin's login forms:
API_LOGIN_RATE = os.environ.get("API_LOGIN_RATE", "10/minute")
# ... failed logins per username, over the token endpoint and both forms
# (only failures count, so a real user's own logins never lock them out):
API_LOGIN_USERNAME_RATE = os.environ.get("API_LOGIN_USERNAME_RATE", "5/minute")
# Requests per client address to POST /api/v1/auth/token (by default the
# login rate), per user to POST /api/v1/ws-tickets and POST /api/v1/executions.
API_TOKEN_RATE = os.environ.get("API_TOKEN_RATE", API_LOGIN_RATE)
API_WS_TICKET_RATE = os.environ.get("API_WS_TICKET_RATE", "60/minute")
API_EXECUTION_CREATE_RATE = os.environ.get("API_EXECUTION_CREATE_RATE", "1000/minute")
# Items one POST /api/v1/executions/batch may hold (400 beyond); each counts
# against API_EXECUTION_CREATE_RATE and EXECUTIONS_MAX_ACTIVE_PER_USER.
API_EXECUTION_BATCH_MAX_ITEMS = int(os.environ.get("API_EXECUTION_BATCH_MAX_ITEMS", "1000"))
# Largest request body accepted (413 beyond); put the same limit in front
# (nginx client_max_body_size), since daphne reads a whole body first.
API_MAX_BODY_BYTES = int(os.environ.get("API_MAX_BODY_BYTES", str(1024 * 1024)))
# Deepest nesting of arrays and objects accepted in a JSON request body (400 beyond).
API_MAX_JSON_DEPTH = int(os.environ.get("API_MAX_JSON_DEPTH", "64"))
# HTTP requests one server process runs at once (each holds a thread and a
# database connection); more wait their turn. 0: no limit.
API_MAX_CONCURRENT_REQUESTS = int(os.environ.get("API_MAX_CONCURRENT_REQUESTS", "16"))

# The OpenAPI schema (/api/v1/schema) and its Swagger UI (/api/v1/docs), whose
# assets come from drf-spectacular-sidecar: no CDN, so the docs work offline.
SPECTACULAR_SETTINGS = {
    "TITLE": "Workflow push API",
    "DESCRIPTION": (
        "Run workflows and follow their executions. Authenticate with "
        "`Authorization: Bearer <token>` (from `POST /api/v1/auth/token`) or a Django "
        "session. Live updates come over the WebSocket "
        "`/api/v1/ws/executions/{execution_id}`, described in docs/asyncapi.yaml, or as "
        "Server-Sent Events (`/api/v1/executions/{execution_id}/stream`, `/api/v1/stream`), "
        "or by long-poll (`?wait=` on the events endpoint)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["executions.api.schema.paths_without_trailing_slash"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "executions.api.schema.event_stream_paths",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ExecutionStatusEnum": "executions.models.ExecutionStatus",
        "NodeStatusEnum": "executions.models.NodeStatus",
    },
}

# Realtime push.
# Seconds a socket may go without hearing of new events before it checks the
# event log itself (a dropped channel-layer message is found this way).
REALTIME_RECHECK_INTERVAL = float(os.environ.get("REALTIME_RECHECK_INTERVAL", "1.0"))
# Executions a feed subscribed without a cursor starts with: the newest that
# match its filter, in their current state (0 to 1000).
REALTIME_FEED_BACKLOG = int(os.environ.get("REALTIME_FEED_BACKLOG", "50"))
# Seconds a ticket from POST /api/v1/ws-tickets may be used (once) to open a socket.
REALTIME_TICKET_TTL_SECONDS = int(os.environ.get("REALTIME_TICKET_TTL_SECONDS", "60"))
# Largest inbound text frame a socket accepts (close 1009 beyond); daphne
# itself refuses frames over 1 MiB.
REALTIME_MAX_MESSAGE_BYTES = int(os.environ.get("REALTIME_MAX_MESSAGE_BYTES", str(64 * 1024)))
# Inbound messages a socket may send in any one second (close 1008 beyond).
REALTIME_MAX_MESSAGES_PER_SECOND = int(os.environ.get("REALTIME_MAX_MESSAGES_PER_SECOND", "20"))
# Subscribe and unsubscribe requests one /api/v1/ws socket may send in any
# second, apart from the messages above (close 1008 beyond).
REALTIME_MAX_SUBSCRIBES_PER_SECOND = int(
    os.environ.get("REALTIME_MAX_SUBSCRIBES_PER_SECOND", "500")
)
# Bytes that may wait to be taken by one socket's client: past this its
# sends wait, and a client that stays past it for REALTIME_SEND_TIMEOUT
# seconds is closed with 4408 (under daphne).
REALTIME_SEND_BUFFER_BYTES = int(os.environ.get("REALTIME_SEND_BUFFER_BYTES", str(1024 * 1024)))
REALTIME_SEND_TIMEOUT = float(os.environ.get("REALTIME_SEND_TIMEOUT", "5"))
# Seconds the server waits for the client to answer its close (the end of a
# stream) before dropping the connection, and with it whatever is unread.
REALTIME_CLOSE_TIMEOUT = float(os.environ.get("REALTIME_CLOSE_TIMEOUT", "10"))
# Seconds a socket may send nothing (not even a ping) before it is closed with 4410.
REALTIME_IDLE_TIMEOUT = float(os.environ.get("REALTIME_IDLE_TIMEOUT", "120"))
# Seconds between the comments an event stream (SSE) sends while it has nothing
# else to send, so that proxies keep it open; each also counts as a ping.
REALTIME_SSE_HEARTBEAT = float(os.environ.get("REALTIME_SSE_HEARTBEAT", "15"))
# The longest ?wait= of GET /api/v1/executions/{id}/events (long-poll), in seconds.
API_EVENTS_MAX_WAIT = int(os.environ.get("API_EVENTS_MAX_WAIT", "30"))
# Open sockets one user may have on one server process (close 4429 beyond).
REALTIME_MAX_SOCKETS_PER_USER = int(os.environ.get("REALTIME_MAX_SOCKETS_PER_USER", "50"))
# Executions one /api/v1/ws socket may follow at once (an error with 4429 beyond).
REALTIME_MAX_SUBSCRIPTIONS = int(os.environ.get("REALTIME_MAX_SUBSCRIPTIONS", "1000"))
# Socket handshakes one client address may start per server process, counted
# before authentication reads the database ("N/second|minute|hour|day"; empty
# or 0: no limit; close 4429 beyond). Generous: a reconnect storm after a
# deploy, or the benchmark's thousands of sockets from one address, fit.
REALTIME_HANDSHAKE_RATE = os.environ.get("REALTIME_HANDSHAKE_RATE", "10000/minute")

# Prometheus metrics: each server at /metrics, each worker on its
# --metrics-port (executions.metrics). Off: nothing is measured or served.
METRICS_ENABLED = env_bool("METRICS_ENABLED", default=True)
# Who may read them: a scrape with "Authorization: Bearer <METRICS_TOKEN>", or
# from one of these addresses or networks (the client address as
# TRUSTED_PROXY_HOPS settles it). Neither set: anyone while DEBUG is on, nobody
# while it is off.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_ADDRESSES = env_list("METRICS_ALLOWED_ADDRESSES", [])

# Seconds a thread may keep the interpreter lock while another waits for it,
# in servers and workers (Python's default: 0.005); executions.runtime.
PROCESS_SWITCH_INTERVAL = float(os.environ.get("PROCESS_SWITCH_INTERVAL", "0.0005"))
# Arenas the C allocator (glibc) may keep in servers and workers; 0: glibc's
# default, eight per core; executions.runtime.
PROCESS_MALLOC_ARENAS = int(os.environ.get("PROCESS_MALLOC_ARENAS", "2"))

# Executions.
# Threads the engine uses for database writes in one process.
EXECUTIONS_DB_THREADS = int(os.environ.get("EXECUTIONS_DB_THREADS", "2"))

# "text" (the default) or "json": one JSON object a line, daphne's access log included.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "executions.log_context.JsonFormatter"},
    },
    # LOG_FORMAT=json: one JSON object a line, with the request, execution and
    # node it is about (executions/log_context.py).
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
# Executions one user may have pending or running at once; creating one more
# is refused (429 over REST). 0: no limit.
EXECUTIONS_MAX_ACTIVE_PER_USER = int(os.environ.get("EXECUTIONS_MAX_ACTIVE_PER_USER", "1000"))
# Nodes of one execution that may run at the same time.
EXECUTIONS_MAX_PARALLEL_NODES = int(os.environ.get("EXECUTIONS_MAX_PARALLEL_NODES", "4"))
# Node outputs longer than this many characters of JSON are cut in node events
# (the full output stays in the execution's detail).
EXECUTIONS_EVENT_OUTPUT_LIMIT = int(os.environ.get("EXECUTIONS_EVENT_OUTPUT_LIMIT", "2048"))
# A result longer than this many characters of JSON is cut in status events
# (stored and sent) with "result_truncated": true; the full result stays in
# the execution's detail.
EXECUTIONS_EVENT_RESULT_LIMIT = int(os.environ.get("EXECUTIONS_EVENT_RESULT_LIMIT", str(64 * 1024)))
# Each text of an event (a log line's message, a node's or an execution's
# error, a status message) longer than this many characters is cut, stored
# and sent, with "<field>_truncated": true and "<field>_size".
EXECUTIONS_EVENT_TEXT_LIMIT = int(os.environ.get("EXECUTIONS_EVENT_TEXT_LIMIT", "8192"))
# A node's error, and an execution's, longer than this many characters is
# stored cut (ending in "…") on the node and the execution (REST).
EXECUTIONS_MAX_ERROR_CHARS = int(os.environ.get("EXECUTIONS_MAX_ERROR_CHARS", str(64 * 1024)))
# Largest output a node may produce, and largest input the engine assembles
# for a node with several parents, in bytes of JSON; past it the attempt fails.
EXECUTIONS_MAX_NODE_OUTPUT_BYTES = int(
    os.environ.get("EXECUTIONS_MAX_NODE_OUTPUT_BYTES", str(1024 * 1024))
)
# All the node outputs of one execution stored together, plus its result, in
# bytes of JSON; the node whose output would pass it fails, and so does the run.
EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES = int(
    os.environ.get("EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES", str(16 * 1024 * 1024))
)
# Log lines, and bytes of log messages, recorded per execution; past either
# one warning says the log was cut and later lines are dropped.
EXECUTIONS_MAX_LOG_LINES = int(os.environ.get("EXECUTIONS_MAX_LOG_LINES", "10000"))
EXECUTIONS_MAX_LOG_BYTES = int(os.environ.get("EXECUTIONS_MAX_LOG_BYTES", str(4 * 1024 * 1024)))
# Streamed output (ctx.stream): the pieces of one stream within this many
# seconds become one chunk event; a chunk is sent early at this many bytes.
EXECUTIONS_CHUNK_INTERVAL = float(os.environ.get("EXECUTIONS_CHUNK_INTERVAL", "0.05"))
EXECUTIONS_CHUNK_MAX_BYTES = int(os.environ.get("EXECUTIONS_CHUNK_MAX_BYTES", str(16 * 1024)))
# Bytes all of an execution's streams record, at most; past it they are cut.
EXECUTIONS_MAX_STREAM_BYTES = int(
    os.environ.get("EXECUTIONS_MAX_STREAM_BYTES", str(4 * 1024 * 1024))
)
EXECUTIONS_MAX_STREAMS_PER_NODE = int(os.environ.get("EXECUTIONS_MAX_STREAMS_PER_NODE", "16"))
# Log lines and chunks of many executions recorded in one transaction, at most;
# and those one run may have waiting before its node waits for them.
EXECUTIONS_RECORD_BATCH = int(os.environ.get("EXECUTIONS_RECORD_BATCH", "500"))
EXECUTIONS_RECORDS_PENDING = int(os.environ.get("EXECUTIONS_RECORDS_PENDING", "100"))
# Batches of records a runner writes at once (each in one of the engine's
# database threads, EXECUTIONS_DB_THREADS), never two with the same execution.
EXECUTIONS_RECORD_WRITERS = int(os.environ.get("EXECUTIONS_RECORD_WRITERS", "2"))
# Progress-only status events recorded per execution per second, at most.
EXECUTIONS_PROGRESS_EVENTS_PER_SECOND = float(
    os.environ.get("EXECUTIONS_PROGRESS_EVENTS_PER_SECOND", "5")
)
# ... and by all the executions of one process together, at most.
EXECUTIONS_PROGRESS_EVENTS_PER_SECOND_TOTAL = float(
    os.environ.get("EXECUTIONS_PROGRESS_EVENTS_PER_SECOND_TOTAL", "100")
)
# Seconds between a runner's checks of the database for cancellations
# requested through another process.
EXECUTIONS_CANCEL_POLL_INTERVAL = float(os.environ.get("EXECUTIONS_CANCEL_POLL_INTERVAL", "1.0"))
# Hosts the http_request node may call ("example.com", "api.example.com:8443",
# or "*" for any); empty means none.
EXECUTIONS_HTTP_ALLOWED_HOSTS = env_list("EXECUTIONS_HTTP_ALLOWED_HOSTS", [])
# Networks (CIDRs, e.g. "10.0.0.0/8,fd00::/8") the http_request node may reach
# although they are not public: loopback, private, link-local (the cloud
# metadata address 169.254.169.254), ... are refused unless listed here.
EXECUTIONS_HTTP_ALLOWED_NETWORKS = env_list("EXECUTIONS_HTTP_ALLOWED_NETWORKS", [])
# Largest response body the http_request node reads, counted after decoding
# gzip or deflate.
EXECUTIONS_HTTP_MAX_RESPONSE_BYTES = int(
    os.environ.get("EXECUTIONS_HTTP_MAX_RESPONSE_BYTES", str(1024 * 1024))
)
# Longest an http_request node's call may take, from resolving the host to the
# last byte of the body; a node's own timeout_seconds can only be shorter.
EXECUTIONS_HTTP_MAX_SECONDS = float(os.environ.get("EXECUTIONS_HTTP_MAX_SECONDS", "30"))
# Bounds of the JMESPath expressions of transform and condition nodes. At
# validation: characters, and nesting of (), [] and {}.
EXECUTIONS_EXPRESSION_MAX_LENGTH = int(os.environ.get("EXECUTIONS_EXPRESSION_MAX_LENGTH", "1000"))
EXECUTIONS_EXPRESSION_MAX_DEPTH = int(os.environ.get("EXECUTIONS_EXPRESSION_MAX_DEPTH", "20"))
# At run time, in an evaluator process: CPU seconds per evaluation, the
# process's address space, and the result's size as compact JSON. Past one
# the node's attempt fails.
EXECUTIONS_EXPRESSION_TIMEOUT = float(os.environ.get("EXECUTIONS_EXPRESSION_TIMEOUT", "2"))
EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES = int(
    os.environ.get("EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES", str(256 * 1024 * 1024))
)
EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES = int(
    os.environ.get("EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES", str(1024 * 1024))
)
# Evaluator processes per server or worker process; more evaluations wait their turn.
EXECUTIONS_EXPRESSION_WORKERS = int(os.environ.get("EXECUTIONS_EXPRESSION_WORKERS", "2"))
# Threads that serve WebSocket sockets' database reads in one server process.
REALTIME_DB_THREADS = int(os.environ.get("REALTIME_DB_THREADS", "8"))

# Where executions run: "inprocess" (on a background loop of the server
# process; the default without Redis) or "celery" (worker processes started
# with `manage.py worker`; the default when REDIS_URL is set).
EXECUTIONS_RUNNER = os.environ.get("EXECUTIONS_RUNNER") or ("celery" if REDIS_URL else "inprocess")
# A runner renews its claim on each execution it runs; one whose claim has
# not been renewed for this long is considered lost.
EXECUTIONS_LEASE_SECONDS = float(os.environ.get("EXECUTIONS_LEASE_SECONDS", "30"))
# How often each runner looks for lost executions and lost dispatches.
EXECUTIONS_REAPER_INTERVAL = float(os.environ.get("EXECUTIONS_REAPER_INTERVAL", "5"))
# Pending executions dispatched longer ago than this are dispatched again
# (the broker may have lost the message, e.g. when Redis restarted); the wait
# doubles after each re-dispatch of one execution, to 32 times this, and
# nothing is sent again while the broker's queue holds a task for each
# pending execution.
EXECUTIONS_REDISPATCH_AFTER = float(os.environ.get("EXECUTIONS_REDISPATCH_AFTER", "60"))
# Times an execution may be claimed in all (first run plus reruns after a
# lost runner, for workflows with retry_on_worker_loss).
EXECUTIONS_MAX_RUNS = int(os.environ.get("EXECUTIONS_MAX_RUNS", "3"))
# On SIGTERM a worker stops taking work and lets its runs finish for this
# long; then it hands the rest back (rerun, or failed if not repeatable).
EXECUTIONS_SHUTDOWN_GRACE_SECONDS = float(os.environ.get("EXECUTIONS_SHUTDOWN_GRACE_SECONDS", "20"))
# Look for lost executions in this process (the server in embedded mode,
# and every worker).
EXECUTIONS_MAINTENANCE = env_bool("EXECUTIONS_MAINTENANCE", default=True)
# Every server and worker writes a heartbeat to the database this often (the
# workers view, `manage.py status`); one not heard of for WORKERS_TIMEOUT_SECONDS
# is gone, and its row is deleted WORKERS_RETENTION_HOURS later (0 keeps them).
WORKERS_HEARTBEAT_SECONDS = float(os.environ.get("WORKERS_HEARTBEAT_SECONDS", "5"))
WORKERS_TIMEOUT_SECONDS = float(os.environ.get("WORKERS_TIMEOUT_SECONDS", "20"))
WORKERS_RETENTION_HOURS = float(os.environ.get("WORKERS_RETENTION_HOURS", "24"))
# Finished executions, with their events and node rows, are deleted this many
# days after they finished (0 keeps them all); expired sessions and socket
# tickets go in the same prune.
EXECUTIONS_RETENTION_DAYS = float(os.environ.get("EXECUTIONS_RETENTION_DAYS", "30"))
# Rows one delete statement removes at most, each statement its own short
# transaction; also the executions taken per batch.
EXECUTIONS_RETENTION_BATCH = int(os.environ.get("EXECUTIONS_RETENTION_BATCH", "1000"))
# Seconds between prunes by the maintenance loops of all processes together
# (they share the cache); 0: only `manage.py prune_executions` prunes.
EXECUTIONS_RETENTION_INTERVAL = float(os.environ.get("EXECUTIONS_RETENTION_INTERVAL", "3600"))

# Celery (worker processes), with the Redis the channel layer already uses.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# An unacknowledged task (its worker died) comes back after this long; the
# lease has recovered the execution long before, so the copy is a no-op.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
