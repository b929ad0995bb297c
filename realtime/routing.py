from django.urls import re_path

from realtime.consumers import ExecutionConsumer
from realtime.languages import SocketLanguage
from realtime.multiplex import MultiplexConsumer

# Each consumer speaks its handshake's language (realtime.languages).
websocket_urlpatterns = [
    re_path(
        r"^api/v1/ws/executions/(?P<execution_id>[^/]+)/?$",
        SocketLanguage(ExecutionConsumer.as_asgi()),
    ),
    re_path(r"^api/v1/ws/?$", SocketLanguage(MultiplexConsumer.as_asgi())),
]
