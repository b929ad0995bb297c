"""Reads of the realtime app."""

from collections.abc import Iterable
from importlib import import_module
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db.models import F
from django.utils import timezone


class Access(NamedTuple):
    """What an open socket's user may still do: staff flag, current API token, and the
    session auth hashes that log a session in as them now."""

    is_staff: bool
    token_key: str | None
    # Django's session auth hash of the current password, with SECRET_KEY and
    # with each of SECRET_KEY_FALLBACKS (as django.contrib.auth.get_user accepts).
    session_hashes: frozenset[str] = frozenset()


class SessionLogin(NamedTuple):
    """Whom a session is logged in as, and the session auth hash it was logged in with."""

    user_id: str | None
    auth_hash: str | None


def socket_users_access(user_ids: Iterable[int]) -> dict[int, Access]:
    """Each still active user's ``Access``, in one query; inactive or deleted users are absent."""
    users = (
        get_user_model()
        .objects.filter(id__in=list(user_ids), is_active=True)
        .annotate(token_key=F("auth_token__key"))
        .only("id", "is_staff", "password")
    )
    return {user.pk: Access(user.is_staff, user.token_key, session_hashes(user)) for user in users}


def session_hashes(user) -> frozenset[str]:
    return frozenset([user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()])


def socket_sessions(session_keys: Iterable[str]) -> dict[str, SessionLogin]:
    """The login each of these sessions holds; sessions that ended or expired are absent.

    One query with the database-backed session engines (``db``, ``cached_db``);
    other engines load each session from where they keep it (no query).
    """
    store = import_module(settings.SESSION_ENGINE).SessionStore
    keys = list(session_keys)
    if not hasattr(store, "get_model_class"):
        loaded = {key: store(key).load() for key in keys}  # {} once ended or expired
        return {key: login_in(data) for key, data in loaded.items() if data}
    rows = (
        store.get_model_class()
        .objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
        .values_list("session_key", "session_data")
    )
    decode = store().decode
    return {key: login_in(decode(data)) for key, data in rows}


def login_in(session_data: dict) -> SessionLogin:
    return SessionLogin(session_data.get(SESSION_KEY), session_data.get(HASH_SESSION_KEY))
