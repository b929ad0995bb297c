"""Who is on the other end of a socket: Bearer token or Django session.

``BearerTokenAuthMiddleware`` sits inside Channels' ``AuthMiddlewareStack``:
the session has been resolved already, and an ``Authorization: Bearer``
header, when present, replaces it. ``scope["auth_method"]`` records which one
authenticated the socket, because only cookie-authenticated sockets need an
origin check (a browser sends cookies on cross-site requests; it cannot send
a header).
"""

from urllib.parse import urlsplit

from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host
from rest_framework.authtoken.models import Token

from realtime.db import db_read

SESSION = "session"
TOKEN = "token"


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _user_for_token(key: str):
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class BearerTokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        authorization = header(scope, b"authorization")
        if authorization is not None:
            keyword, _, key = authorization.partition(" ")
            user = AnonymousUser()
            if keyword.lower() == "bearer" and key.strip():
                user = await db_read(_user_for_token)(key.strip())
            scope = dict(scope, user=user, auth_method=TOKEN if user.is_authenticated else None)
        else:
            user = scope.get("user")
            authenticated = user is not None and user.is_authenticated
            scope = dict(scope, auth_method=SESSION if authenticated else None)
        return await super().__call__(scope, receive, send)


def origin_allowed(scope) -> bool:
    """Whether the handshake's Origin may use the session cookie."""
    origin = header(scope, b"origin")
    if not origin:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    hostname = urlsplit(origin).hostname
    if not hostname:
        return False
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return validate_host(hostname, settings.ALLOWED_HOSTS)
