"""ASGI entry point: HTTP (REST, admin) and the execution WebSocket stream."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from executions.maintenance import start_maintenance  # noqa: E402
from realtime.auth import BearerTokenAuthMiddleware  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

if settings.EXECUTIONS_RUNNER == "inprocess":
    # This server runs the executions, so it also recovers those that its
    # previous instance left behind when it stopped.
    start_maintenance()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(
            BearerTokenAuthMiddleware(URLRouter(websocket_urlpatterns))
        ),
    }
)
