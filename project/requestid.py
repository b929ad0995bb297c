"""Every request gets an id: in the ``X-Request-ID`` response header and in the
logs of what it caused, the execution it created included.

A proxy's ``X-Request-ID`` is taken only when proxies are trusted
(``TRUSTED_PROXY_HOPS`` above 0: the client cannot reach the server but
through them) and it is a plain token of at most 64 characters; otherwise the
id is new.
"""

import re
import uuid

from django.conf import settings

from executions import log_context

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        trusted = settings.TRUSTED_PROXY_HOPS > 0 and REQUEST_ID.fullmatch(given)
        request.id = given if trusted else uuid.uuid4().hex
        with log_context.bound(request_id=request.id):
            response = self.get_response(request)
        response["X-Request-ID"] = request.id
        return response
