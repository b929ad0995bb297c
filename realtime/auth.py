"""Who is on the other end of a socket: Bearer token, one-time ticket or Django session.

``SocketAuthMiddleware`` sits inside Channels' cookie and session middleware
(``SocketAuthStack``): for a socket without a token or ticket, the session's
user has been resolved already. An ``Authorization: Bearer`` header, when
present, replaces it; otherwise a ``?ticket=`` from ``POST /api/v1/ws-tickets``
does. A credential that is present but bad never falls back to the session.
``scope["auth_method"]`` records which one authenticated the socket, because
only cookie-authenticated sockets need an origin check (a browser sends
cookies on cross-site requests; it cannot send a header, and a cross-site
page cannot get a ticket). Long-lived tokens are never read from the URL:
URLs end up in logs.
"""

import asyncio
import threading
import time
import weakref
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddleware, get_user
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain
from django.utils.translation import gettext_lazy as _
from rest_framework.authtoken.models import Token

from realtime.db import db_read
from realtime.languages import text_for
from realtime.selectors import Access, SessionLogin
from realtime.services import socket_ticket_redeem

SESSION = "session"
TOKEN = "token"
TICKET = "ticket"


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def query_param(scope, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[-1] if values else None


def _user_for_token(key: str):
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenLookups:
    """The token lookups of one event loop: handshakes with the same token share one.

    A lookup in flight is awaited by every handshake that brings its token
    meanwhile, and a user found is reused for ``REALTIME_RECHECK_INTERVAL``
    seconds: no longer than an open socket keeps its access after the token is
    revoked or the user deactivated, until the watchdog's next check. In this
    process, deleting the token or saving the user forgets it at once. So a
    storm of thousands of sockets opened with one token reads it about once a
    second, not once per socket. Unknown tokens are never kept.
    """

    # Past this many entries, those that expired are dropped (all, if none has).
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self.found: dict[str, tuple[float, Any]] = {}
        self.pending: dict[str, asyncio.Future] = {}
        # ``forget`` runs in the thread that saved or deleted.
        self.lock = threading.Lock()

    async def user(self, key: str):
        entry = self.found.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        pending = self.pending.get(key)
        if pending is None:
            pending = self.pending[key] = asyncio.ensure_future(self._look_up(key))
        return await asyncio.shield(pending)

    async def _look_up(self, key: str):
        try:
            user = await db_read(_user_for_token)(key)
        finally:
            self.pending.pop(key, None)
        if user.is_authenticated:
            self._keep(key, user)
        return user

    def _keep(self, key: str, user) -> None:
        now = time.monotonic()
        with self.lock:
            if len(self.found) >= self.MAX_ENTRIES:
                self.found = {k: e for k, e in self.found.items() if e[0] > now}
                if len(self.found) >= self.MAX_ENTRIES:
                    self.found = {}
            self.found[key] = (now + settings.REALTIME_RECHECK_INTERVAL, user)

    def forget(self, *, key: str | None = None, user_id: Any = None) -> None:
        with self.lock:
            self.found = {
                k: e
                for k, e in self.found.items()
                if k != key and (user_id is None or e[1].pk != user_id)
            }


_lookups: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TokenLookups]" = (
    weakref.WeakKeyDictionary()
)


def token_lookups() -> TokenLookups:
    """The token lookups of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _lookups:
        _lookups[loop] = TokenLookups()
    return _lookups[loop]


@receiver(post_delete, sender=Token, dispatch_uid="realtime.forget_deleted_token")
def forget_deleted_token(sender, instance: Token, **kwargs) -> None:
    for lookups in list(_lookups.values()):
        lookups.forget(key=instance.key)


@receiver(post_save, sender=get_user_model(), dispatch_uid="realtime.forget_saved_user")
def forget_saved_user(sender, instance, **kwargs) -> None:
    for lookups in list(_lookups.values()):
        lookups.forget(user_id=instance.pk)


async def _from_header(authorization: str) -> dict:
    keyword, _, key = authorization.partition(" ")
    if keyword.lower() != "bearer" or not key.strip():
        return {"user": AnonymousUser(), "auth_method": None}
    user = await token_lookups().user(key.strip())
    if not user.is_authenticated:
        return {"user": user, "auth_method": None}
    return {"user": user, "auth_method": TOKEN, "auth_token": key.strip()}


async def _from_ticket(ticket: str) -> dict:
    user = await database_sync_to_async(socket_ticket_redeem)(ticket=ticket)
    if user is None:
        return {"user": AnonymousUser(), "auth_method": None, "auth_problem": TICKET}
    return {"user": user, "auth_method": TICKET}


class SessionAuthMiddleware(AuthMiddleware):
    """Channels' ``AuthMiddleware``, reading the session's user only for sockets that
    bring neither a token nor a ticket, and in the socket read pool.

    Channels' own reads it for every socket, on the one thread it shares with
    every sync view: in a storm of handshakes each waited there for the others
    and for REST, past daphne's handshake timeout.
    """

    async def resolve_scope(self, scope) -> None:
        if header(scope, b"authorization") is None and not query_param(scope, "ticket"):
            scope["user"]._wrapped = await db_read(get_user.func)(scope)


class SocketSessionMiddleware(SessionMiddleware):
    """Channels' ``SessionMiddleware``, without its wrapper around every frame sent.

    That wrapper saves a changed session when an HTTP response starts, which
    never happens on a socket; it still looked into the session for each frame.
    Sockets read the session (who logged in) and never change it.
    """

    async def __call__(self, scope, receive, send):
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def SocketAuthStack(inner):
    """Cookies, session and user as Channels' ``AuthMiddlewareStack`` resolves them,
    then the socket's own credentials (``SocketAuthMiddleware``)."""
    return CookieMiddleware(
        SocketSessionMiddleware(SessionAuthMiddleware(SocketAuthMiddleware(inner)))
    )


class SocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        authorization = header(scope, b"authorization")
        ticket = query_param(scope, "ticket")
        if authorization is not None:
            scope = dict(scope, **await _from_header(authorization))
        elif ticket:
            scope = dict(scope, **await _from_ticket(ticket))
        else:
            user = scope.get("user")
            authenticated = user is not None and user.is_authenticated
            scope = dict(scope, auth_method=SESSION if authenticated else None)
        return await super().__call__(scope, receive, send)


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_allowed(scope) -> bool:
    """Whether the handshake's Origin may use the session cookie.

    Allowed, as in Django's CSRF origin check: an origin in
    ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com`` matching
    ``https://example.com`` and its subdomains), or the site the socket was
    reached on: the same scheme (http for ws, https for wss) and port, and the
    ``Host`` it was reached at or a host in ``ALLOWED_HOSTS``. ``*`` there
    allows only the socket's own host: it never makes another site trusted.
    """
    origin = header(scope, b"origin")
    if not origin:
        # Browsers send an Origin on every cross-origin request; a stream over HTTP
        # (realtime.sse) without one is a same-origin GET, which no other site
        # can read (no CORS header allows it). A socket handshake always has one.
        return scope.get("bridge") is not None
    if origin in settings.CSRF_TRUSTED_ORIGINS or _trusted_by_wildcard(origin):
        return True
    parsed = _scheme_host_port(origin)
    if parsed is None:
        return False
    scheme, host, port = parsed
    reached = _reached_at(scope)
    if reached is None or (scheme, port) != (reached[0], reached[2]):
        return False
    named = [allowed for allowed in settings.ALLOWED_HOSTS if allowed != "*"]
    return host == reached[1] or validate_host(host, named)


def _trusted_by_wildcard(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:  # e.g. "http://[" : not an origin at all
        return False
    wildcards = [urlsplit(o) for o in settings.CSRF_TRUSTED_ORIGINS if "*" in o]
    return any(
        w.scheme == parts.scheme and is_same_domain(parts.netloc, w.netloc.lstrip("*"))
        for w in wildcards
    )


def _scheme_host_port(origin: str) -> tuple[str, str, int] | None:
    """An origin's scheme, host (IPv6 in brackets, as in ``ALLOWED_HOSTS``) and port."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts.scheme, host, DEFAULT_PORTS[parts.scheme] if port is None else port


def _reached_at(scope) -> tuple[str, str | None, int] | None:
    """The socket's own site as a page's origin; None when its ``Host`` is not served.

    Django refuses a request for a host not in ``ALLOWED_HOSTS``; so does this.
    """
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    host = header(scope, b"host")
    if host is None:
        return scheme, None, DEFAULT_PORTS[scheme]
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    return scheme, domain, int(port) if port else DEFAULT_PORTS[scheme]


SESSION_ENDED = _(
    "Your session ended (you logged out, or your password was changed): log in again, "
    "then reconnect."
)
DEACTIVATED = _("Your account was deactivated: this socket is closed.")
TOKEN_REVOKED = _(
    "The API token this socket was opened with was revoked: get a new one from "
    "POST /api/v1/auth/token and reconnect."
)
EXECUTION_HIDDEN = _("You may no longer see this execution: this socket is closed.")


def socket_access_problem(
    access: Access | None, *, scope, user_id: Any, session: SessionLogin | None
) -> str | None:
    """Why a socket's user may no longer use it, or None.

    ``access`` is the user's current state (None: deactivated or deleted);
    ``session`` what the socket's session holds now (None: it ended or expired),
    which matters to session sockets only. Called by the watchdog: the reason
    comes in the socket's language.
    """
    problem = None
    if access is None:
        problem = DEACTIVATED
    elif scope.get("auth_method") == SESSION and not session_logged_in(access, session, user_id):
        problem = SESSION_ENDED
    elif scope.get("auth_method") == TOKEN and access.token_key != scope.get("auth_token"):
        problem = TOKEN_REVOKED
    return None if problem is None else text_for(scope, problem)


def execution_access_problem(access: Access, *, user_id: Any, owner_id: Any) -> str | None:
    """Why a user (still allowed on the socket) may no longer watch an execution
    of ``owner_id``, or None (a lazy translation: put it in the socket's language)."""
    if owner_id != user_id and not access.is_staff:
        return EXECUTION_HIDDEN
    return None


def session_logged_in(access: Access, session: SessionLogin | None, user_id: Any) -> bool:
    """Whether ``session`` still logs in ``user_id``, as Django's ``get_user`` would decide:
    a logout flushes the session, a password change changes the user's session auth hash."""
    return (
        session is not None
        and session.user_id == str(user_id)
        and session.auth_hash in access.session_hashes
    )
