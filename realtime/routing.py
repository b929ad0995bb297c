from django.urls import re_path

from realtime.consumers import ExecutionConsumer
from realtime.multiplex import MultiplexConsumer

websocket_urlpatterns = [
    re_path(r"^api/v1/ws/executions/(?P<execution_id>[^/]+)/?$", ExecutionConsumer.as_asgi()),
    re_path(r"^api/v1/ws/?$", MultiplexConsumer.as_asgi()),
]
