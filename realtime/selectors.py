"""Reads of the realtime app."""

from collections.abc import Iterable
from typing import NamedTuple

from django.contrib.auth import get_user_model


class Access(NamedTuple):
    """What an open socket's user may still do: staff flag and current API token."""

    is_staff: bool
    token_key: str | None


def socket_users_access(user_ids: Iterable[int]) -> dict[int, Access]:
    """Each still active user's ``Access``, in one query; inactive or deleted users are absent."""
    rows = (
        get_user_model()
        .objects.filter(id__in=list(user_ids), is_active=True)
        .values_list("id", "is_staff", "auth_token__key")
    )
    return {user_id: Access(is_staff, key) for user_id, is_staff, key in rows}
