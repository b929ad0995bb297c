"""ASGI entry point: HTTP (REST, admin) and the execution WebSocket stream."""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup(set_prefix=False)

# Served by daphne's command line (tests import daphne.server, not its cli).
SERVED = "daphne.cli" in sys.modules
if SERVED:
    from executions.runtime import limit_malloc_arenas

    limit_malloc_arenas()  # before this process starts its threads

from project.http import ThreadedHTTPHandler  # noqa: E402

django_asgi_app = ThreadedHTTPHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from executions.engine.runner import active_runs  # noqa: E402
from executions.heartbeat import heartbeat  # noqa: E402
from executions.models import WorkerKind  # noqa: E402
from executions.runners import get_runner  # noqa: E402
from executions.runtime import tune_garbage_collector, tune_thread_switching  # noqa: E402
from project.clientaddr import ClientAddressMiddleware  # noqa: E402
from project.health import HealthRoutes  # noqa: E402
from project.limits import ConcurrentRequestLimit  # noqa: E402
from project.metrics import MetricsRoute  # noqa: E402
from realtime import patches  # noqa: E402
from realtime.auth import SocketAuthStack  # noqa: E402
from realtime.handshakes import HandshakeRateLimit  # noqa: E402
from realtime.longpoll import LongPollRoute  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from realtime.sse import EventStreams  # noqa: E402

# daphne's Server with this project's hooks (realtime.patches) in every
# process that loads the application: daphne's command line, runserver and
# the tests alike.
patches.install()

# What the runner backend needs in a server (in the embedded mode, the
# maintenance that recovers what this server's previous instance left behind).
get_runner().start()

if SERVED:
    # Keep garbage collection from pausing the server and its other threads
    # from holding its loop back.
    tune_garbage_collector()
    tune_thread_switching()
    # Seen in the workers view and `manage.py status` (a runner too, embedded).
    heartbeat.start(
        kind=WorkerKind.SERVER,
        runs_executions=get_runner().embedded,
        running=active_runs,
    )

sockets = HandshakeRateLimit(SocketAuthStack(URLRouter(websocket_urlpatterns)))
requests = ConcurrentRequestLimit(django_asgi_app, settings.API_MAX_CONCURRENT_REQUESTS)

# The client's address is settled first (TRUSTED_PROXY_HOPS): everything
# inside, Django's REMOTE_ADDR included, sees the same one. Event streams
# (SSE) are the sockets' consumers behind an HTTP response; long-polls wait
# outside the bound on requests at once; health checks and metrics come before
# all of it.
application = ClientAddressMiddleware(
    ProtocolTypeRouter(
        {
            "http": MetricsRoute(
                HealthRoutes(EventStreams(sockets, LongPollRoute(django_asgi_app, requests)))
            ),
            "websocket": sockets,
        }
    )
)
