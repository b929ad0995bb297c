"""Every write of the realtime app: issuing, redeeming and pruning socket tickets."""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.db.models.functions import Now

from executions.services.retention import delete_in_batches
from realtime.models import SocketTicket


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def socket_ticket_issue(*, user: AbstractBaseUser) -> tuple[str, int]:
    """A new ticket for ``user`` and its lifetime in seconds; expired tickets are purged.

    Expiry is written and judged by the database's clock: the server that
    redeems a ticket may not be the one that issued it.
    """
    lifetime = settings.REALTIME_TICKET_TTL_SECONDS
    ticket = secrets.token_urlsafe(32)
    SocketTicket.objects.filter(expires_at__lte=Now()).delete()
    SocketTicket.objects.create(
        key_hash=ticket_hash(ticket), user=user, expires_at=Now() + timedelta(seconds=lifetime)
    )
    return ticket, lifetime


def socket_ticket_redeem(*, ticket: str) -> AbstractBaseUser | None:
    """The active user the ticket was issued to, or None; a ticket works only once."""
    stored = (
        SocketTicket.objects.select_related("user")
        .annotate(expired=Q(expires_at__lte=Now()))
        .filter(key_hash=ticket_hash(ticket))
        .first()
    )
    if stored is None:
        return None
    # Whoever deletes the row first redeemed it; a concurrent second use gets 0.
    deleted, _ = SocketTicket.objects.filter(pk=stored.pk).delete()
    if not deleted or stored.expired or not stored.user.is_active:
        return None
    return stored.user


def socket_tickets_prune(*, now: datetime, dry_run: bool, batch: int) -> int:
    """Delete (``dry_run``: count) expired tickets; a used one was deleted when redeemed."""
    expired = SocketTicket.objects.filter(expires_at__lte=now)
    return expired.count() if dry_run else delete_in_batches(expired, batch=batch)
