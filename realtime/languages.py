"""The language a socket speaks: the one its handshake asked for.

As for an HTTP request (``LocaleMiddleware``), that is the dashboard's choice
(its language cookie), else the first of ``Accept-Language`` that is offered,
else ``LANGUAGE_CODE``. ``SocketLanguage`` makes it the active language of the
socket's consumer, and so of every task the consumer starts: what a socket
says while it serves its client (refusals, errors, close reasons) comes in
it. Work that reaches a socket from a task of all the sockets (the watchdog,
the group fanout, the feeds' reads) runs with no language active; there a
text is put in the socket's language with ``text_for`` (or, for a text made
with values, made ``in_socket_language``); the server's hooks, which see
daphne's protocol and not the scope, choose it again from the handshake's
headers (``text_for_headers``).
"""

import contextvars
from types import SimpleNamespace

from django.conf import settings
from django.http import parse_cookie
from django.utils import translation

SCOPE_KEY = "language"


def _header(scope, name: bytes) -> str:
    """The handshake's header ``name``, "" without one."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def socket_language(scope) -> str:
    """The socket's language (chosen once, then kept in its scope)."""
    language = scope.get(SCOPE_KEY)
    if language is None:
        request = SimpleNamespace(
            COOKIES=parse_cookie(_header(scope, b"cookie")),
            META={"HTTP_ACCEPT_LANGUAGE": _header(scope, b"accept-language")},
        )
        language = scope[SCOPE_KEY] = translation.get_language_from_request(request)
    return language


def text_for(scope, text) -> str:
    """``text`` (a lazy translation, or a string made already) in the socket's language."""
    if isinstance(text, str):
        return text
    with translation.override(socket_language(scope)):
        return str(text)


def in_socket_language(scope):
    """The socket's language made active: for a text made with values (``_() % {...}``)
    in a task of all the sockets."""
    return translation.override(socket_language(scope))


def text_for_headers(headers, text) -> str:
    """``text_for`` a connection known only by its handshake's headers (daphne's
    protocol, in ``realtime.patches.send_buffers``): its language is chosen again from them."""
    return text_for({"headers": headers}, text)


def unspoken() -> contextvars.Context:
    """The context for a task of all the sockets: none's language carries into it."""
    return contextvars.Context()


class SocketLanguage:
    """ASGI middleware: the socket's consumer runs in the socket's language."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        language = socket_language(scope) if settings.USE_I18N else settings.LANGUAGE_CODE
        if language == settings.LANGUAGE_CODE:
            # Active already (daphne's tasks have none); nothing more to keep per socket.
            return await self.app(scope, receive, send)
        with translation.override(language):
            return await self.app(scope, receive, send)
