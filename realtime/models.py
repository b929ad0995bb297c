"""One-time tickets that let a browser open a socket without a token in its URL."""

from django.conf import settings
from django.db import models


class SocketTicket(models.Model):
    """A credential for opening one socket, once, before it expires.

    Only the ticket's SHA-256 is stored: a copy of the table opens no socket.
    """

    key_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="socket_tickets"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"ticket of {self.user_id} until {self.expires_at:%H:%M:%S}"
