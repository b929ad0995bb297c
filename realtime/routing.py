from django.urls import re_path

from realtime.consumers import ExecutionConsumer

websocket_urlpatterns = [
    re_path(r"^api/v1/ws/executions/(?P<execution_id>[^/]+)/?$", ExecutionConsumer.as_asgi()),
]
