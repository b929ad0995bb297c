"""Django's wiring for the workflow service.

Every environment variable is declared once, by the app that uses it
(``project.conf``, ``executions.conf``, ``realtime.conf``), and read here into
the Django setting of the same name; a value that cannot be read stops the
process with an error that names the variable. Every value has a safe default
for the embedded mode (SQLite, in-memory channel layer, executions
in-process). Setting ``DATABASE_URL`` and ``REDIS_URL`` moves the same code
onto PostgreSQL and Redis.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from executions.env import read_all
from project.conf import every_setting

BASE_DIR = Path(__file__).resolve().parent.parent

# Each declared variable, as the Django setting of the same name.
environment = read_all(every_setting())
globals().update(environment)

if not environment["SECRET_KEY"]:
    if not environment["DEBUG"]:
        raise ImproperlyConfigured(
            "Set the SECRET_KEY environment variable, or set DEBUG=1 for local development."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

# HTTPS in production (all off by default, for plain-HTTP development and
# tests). Behind a proxy that terminates TLS, TRUSTED_PROXY_HOPS makes its
# X-Forwarded-Proto the request's scheme (project/clientaddr.py).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = LANGUAGE_COOKIE_SECURE = environment["SECURE_COOKIES"]

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
    *environment["EXTRA_INSTALLED_APPS"],
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
DATABASE_URL = environment["DATABASE_URL"] or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
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
STATIC_ROOT = environment["STATIC_ROOT"] or None
WHITENOISE_USE_FINDERS = True
# The JavaScript client package (clients/js, "workflow-push"), which the
# dashboard imports, served as it is under /static/workflow-push/.
STATICFILES_DIRS = [("workflow-push", BASE_DIR / "clients" / "js" / "src")]
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:executions"
LOGOUT_REDIRECT_URL = "dashboard:login"

# Channel layer: in-memory in one process; Redis pub/sub when REDIS_URL is set.
REDIS_URL = environment["REDIS_URL"]
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
                        "max_connections": environment["REDIS_MAX_CONNECTIONS"],
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
            "formatter": "json" if environment["LOG_FORMAT"] == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": environment["LOG_LEVEL"]},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
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
