"""Expired socket tickets are deleted by the executions' prune; live ones stay."""

import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from executions.services.retention import executions_prune
from realtime.models import SocketTicket
from realtime.services import socket_ticket_issue, socket_ticket_redeem, socket_tickets_prune

pytestmark = pytest.mark.django_db


def expired_ticket(user) -> None:
    # Issuing purges expired tickets itself: this one expired after the last issue.
    SocketTicket.objects.create(
        key_hash=uuid.uuid4().hex, user=user, expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_expired_tickets_go_with_every_prune_and_live_ones_stay(user, other_user):
    live, _ = socket_ticket_issue(user=other_user)
    expired_ticket(user)

    counts = executions_prune()

    assert list(SocketTicket.objects.values_list("user", flat=True)) == [other_user.pk]
    assert counts["tickets"] == 1
    assert socket_ticket_redeem(ticket=live) == other_user


@override_settings(EXECUTIONS_RETENTION_DAYS=0)
def test_tickets_go_even_when_every_execution_is_kept(user):
    expired_ticket(user)

    assert executions_prune()["tickets"] == 1
    assert not SocketTicket.objects.exists()


def test_a_dry_run_counts_expired_tickets_and_keeps_them(user):
    socket_ticket_issue(user=user)
    expired_ticket(user)

    assert socket_tickets_prune(now=timezone.now(), dry_run=True, batch=10) == 1
    assert SocketTicket.objects.count() == 2


def test_every_expired_ticket_goes_whatever_the_batch(user, other_user):
    for owner in (user, other_user, user):
        expired_ticket(owner)

    assert socket_tickets_prune(now=timezone.now(), dry_run=False, batch=2) == 3
    assert not SocketTicket.objects.exists()
