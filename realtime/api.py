"""``POST /api/v1/ws-tickets``: a one-time ticket for opening a socket from a browser."""

from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from executions.api.limits import ExplainedThrottlingMixin, PerUserThrottle
from realtime import services


class SocketTicketThrottle(PerUserThrottle):
    scope = "ws_ticket"
    rate_setting = "API_WS_TICKET_RATE"
    description = gettext_lazy("socket tickets")


TicketSerializer = inline_serializer(
    "SocketTicket",
    {"ticket": serializers.CharField(), "expires_in": serializers.IntegerField()},
)


class SocketTicketView(ExplainedThrottlingMixin, APIView):
    """A ticket for ``?ticket=`` on the socket URL: works once, for ``expires_in`` seconds."""

    throttle_classes = [SocketTicketThrottle]

    @extend_schema(
        summary="Get a one-time socket ticket",
        request=None,
        responses={201: TicketSerializer},
    )
    def post(self, request):
        ticket, lifetime = services.socket_ticket_issue(user=request.user)
        return Response({"ticket": ticket, "expires_in": lifetime}, status=status.HTTP_201_CREATED)
