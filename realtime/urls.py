from django.urls import re_path

from realtime.api import SocketTicketView

urlpatterns = [
    re_path(r"^ws-tickets/?$", SocketTicketView.as_view(), name="ws-ticket"),
]
