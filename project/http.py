"""Django's HTTP handling, each request in one trip to a long-lived thread.

Django's own ASGI handler runs a sync project's request in a new thread per
request and hops between it and the server's event loop for the request
signal, each middleware that can be async, the view and the response: half
a dozen trips through a loop that is also sending to every socket, each
waiting its turn there. Under the benchmark's load that made a create take
100-300 ms that took 13 ms on an idle server, and each new thread opened a
new database connection. Here the event loop reads the body and sends the
response; everything between (signals, every middleware, the view, closing
the response) runs in one call in a pool of ``API_MAX_CONCURRENT_REQUESTS``
threads, which keep their database connections for ``CONN_MAX_AGE`` as a
WSGI server's threads do.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponse
from django.urls import set_script_prefix

from executions.engine.db import shutdown_closing_connections

# Threads when API_MAX_CONCURRENT_REQUESTS is 0 (no limit on requests at once).
UNLIMITED_THREADS = 32


async def _disconnected(receive) -> None:
    """Until the server says the client disconnected."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _replay(chunks: list):
    for chunk in chunks:
        yield chunk


class ThreadedHTTPHandler(ASGIHandler):
    """An ASGI application for Django's HTTP requests, sync middleware and views."""

    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self._pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            threads = settings.API_MAX_CONCURRENT_REQUESTS or UNLIMITED_THREADS
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="http")
        return self._pool

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP here, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(self.pool, self.respond, scope, body_file)
            try:
                await self.send_until_disconnect(response, receive, send)
            finally:
                await loop.run_in_executor(self.pool, response.close)
        finally:
            body_file.close()

    async def send_until_disconnect(self, response, receive, send) -> None:
        """Send the response; a streamed one (a long-poll's wait, a file) stops as soon
        as the client goes away, so that what it holds is given back then."""
        if not response.streaming:
            await self.send_response(response, send)
            return
        sending = asyncio.ensure_future(self.send_response(response, send))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sending, gone):
                task.cancel()
            await asyncio.gather(sending, gone, return_exceptions=True)
        if not sending.cancelled() and sending.exception() is not None:
            raise sending.exception()

    def respond(self, scope, body_file) -> HttpResponse:
        """The response to the request, computed in this (pool) thread."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            return error_response
        response = self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if response.streaming and not response.is_async:
            # Read here (static files): Django's send would read it in its one
            # shared thread, with a warning.
            response.streaming_content = _replay(list(response.streaming_content))
        return response

    def close(self) -> None:
        """Close the pool threads' database connections and stop them (tests, shutdown)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            shutdown_closing_connections(pool)
