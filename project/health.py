"""``GET /healthz`` and ``GET /readyz``, for load balancers and process managers.

``/healthz``: the process answers (nothing else is asked). ``/readyz``: the
database answers and every migration is applied, and with ``REDIS_URL`` a
message makes a round trip through the channel layer (Redis); 503 with a JSON
body naming each check that failed. Both are answered here, in front of
everything else (no authentication, throttle or request limit), and cost at
most two queries and one Redis round trip: checks that arrive while one is
under way wait for its answer, and a database found fully migrated is not
asked again about migrations.
"""

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

CHECK_TIMEOUT = 3.0
HEALTH_PATHS = ("/healthz", "/readyz")


class Readiness:
    """This process's readiness checks: one at a time, shared by whoever asks meanwhile."""

    def __init__(self) -> None:
        # One thread, and so one database connection, for every check.
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="readyz")
        self.migrated = False
        self.running: asyncio.Future | None = None

    async def problems(self) -> dict[str, str]:
        """What is not ready, by check name; empty when everything is."""
        if self.running is None or self.running.done():
            self.running = asyncio.ensure_future(self.check())
        return await asyncio.shield(self.running)

    async def check(self) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        checks = {"database": loop.run_in_executor(self.pool, self.database_problem)}
        if settings.REDIS_URL:
            checks["redis"] = asyncio.ensure_future(layer_problem())
        problems = {}
        for name, pending in checks.items():
            try:
                problem = await asyncio.wait_for(pending, CHECK_TIMEOUT)
            except TimeoutError:
                problem = f"no answer in {CHECK_TIMEOUT:g} s"
            if problem:
                problems[name] = problem
        return problems

    def database_problem(self) -> str | None:
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            connection.close_if_unusable_or_obsolete()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if not self.migrated:
                executor = MigrationExecutor(connection)
                plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
                if plan:
                    names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
                    return f"{len(plan)} migrations not applied ({names}): run manage.py migrate"
                self.migrated = True
        except Exception as error:
            connection.close()
            return f"{type(error).__name__}: {str(error).strip()[:300]}"
        return None


async def layer_problem() -> str | None:
    """A message sent to a group of this process's own, and heard back."""
    layer = get_channel_layer()
    group = f"readyz.{uuid.uuid4().hex}"
    heard = asyncio.get_running_loop().create_future()

    def listener(message: dict) -> None:
        if not heard.done():
            heard.set_result(message)

    try:
        await layer.group_listen(group, listener)
        try:
            await layer.group_send(group, {"type": "readyz.ping", "sent": time.time()})
            await heard
        finally:
            await layer.group_unlisten(group, listener)
    except Exception as error:
        return f"{type(error).__name__}: {str(error).strip()[:300]}"
    return None


class HealthRoutes:
    """ASGI: the two health paths, answered before ``app`` sees anything."""

    def __init__(self, app):
        self.app = app
        self.readiness = Readiness()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") not in HEALTH_PATHS:
            return await self.app(scope, receive, send)
        if scope["path"] == "/healthz":
            return await respond(send, 200, {"status": "ok"})
        problems = await self.readiness.problems()
        if problems:
            return await respond(send, 503, {"status": "unavailable", "failed": problems})
        return await respond(send, 200, {"status": "ok"})


async def respond(send, status: int, body: dict) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
