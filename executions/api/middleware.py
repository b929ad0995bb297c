"""Keeps each HTTP request's middleware in one thread."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SyncMiddlewareChain:
    """The last middleware: synchronous only, so that every middleware above it
    runs synchronously too, all in the request's one thread.

    Django runs a middleware that can be either in the mode of the one below
    it. Below an asynchronous handler, each of Django's own middleware would
    run every ``process_request`` and ``process_response`` in the request's
    thread and come back to the server's event loop after each: a dozen trips
    per request through a loop that is also serving every socket.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
