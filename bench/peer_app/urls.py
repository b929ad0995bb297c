import django_eventstream
from django.urls import include, path

from bench.peer_app import publisher

urlpatterns = [
    # One channel per execution, named in the path.
    path("events/<channel>/", include(django_eventstream.urls)),
    path("publish", publisher.publish),
    path("published", publisher.published),
]
