import asyncio
import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections
from rest_framework.test import APIClient

from executions import log_context
from executions.engine.db import close_db_threads
from executions.engine.expression_pool import evaluator_pool
from executions.runners import get_runner
from project.asgi import django_asgi_app
from realtime.db import close_read_threads
from realtime.publish import publisher_loop
from tests.factories import make_token, make_user


class JsonErrorLines(logging.Handler):
    """The ERROR lines as LOG_FORMAT=json writes them, formatted when they are logged
    (the ids they carry are those bound where they were logged)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.setFormatter(log_context.JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def error_lines() -> list[dict]:
    """Every ERROR line logged during the test, as parsed JSON lines."""
    handler = JsonErrorLines()
    logging.getLogger().addHandler(handler)
    try:
        yield handler.lines
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.fixture
def no_dispatch(monkeypatch) -> list:
    """Executions are created pending and run only when the test runs them; the ids
    dispatched, in order."""
    dispatched: list = []
    monkeypatch.setattr(get_runner(), "dispatch", dispatched.append)
    return dispatched


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Each test starts with no request counted against the API's rate limits."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets an empty channel layer, and no execution (nor expression
    evaluator process) outlives its test."""
    channel_layers.backends.clear()
    yield
    get_runner().stop()
    evaluator_pool.stop()
    close_publisher_connections()
    channel_layers.backends.clear()


def close_publisher_connections() -> None:
    """Close the Redis connections that the publisher's loop opened for this test's layer."""
    loop = publisher_loop._loop
    for layer in list(channel_layers.backends.values()):
        if hasattr(layer, "close_publisher"):
            layer.close_publisher()
        if loop is not None and loop in getattr(layer, "_layers", {}):
            asyncio.run_coroutine_threadsafe(layer.flush(), loop).result(5)


@pytest.fixture(scope="session", autouse=True)
def close_engine_connections(django_db_setup, django_db_blocker):
    """Close the engine threads' connections before the test database is dropped."""
    yield
    close_db_threads()
    close_read_threads()
    django_asgi_app.close()
    # Async tests ran their database calls in asgiref's shared thread.
    asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())


ROOT = Path(__file__).resolve().parents[1]


def require_gettext() -> None:
    """Skip without GNU gettext's tools; with REQUIRE_SERVICES=1 (as in CI) fail instead."""
    if shutil.which("msgfmt") and shutil.which("xgettext"):
        return
    message = "needs GNU gettext (msgfmt, xgettext): apt-get install -y gettext"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def compiled_messages() -> None:
    """The message catalogs (``locale/``) compiled: scripts/test.sh compiles them
    first; this is for a test file run on its own after a catalog changed."""
    require_gettext()
    with contextlib.chdir(ROOT):
        call_command("compilemessages", ignore_patterns=[".*"], verbosity=0)


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def other_user(db):
    return make_user("bob")


@pytest.fixture
def staff_user(db):
    return make_user("root", staff=True)


def bearer_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    """An API client authenticated as ``user`` with a Bearer token."""
    return bearer_client(user)


def pytest_collection_modifyitems(config, items):
    """A test on an embedded-mode server (a ``server`` fixture: its own SQLite and
    in-memory layer, whatever the suite's database) runs in the embedded pass only:
    the services pass would run the same test on the same server again."""
    for item in items:
        uses_server = "server" in getattr(item, "fixturenames", ())
        if uses_server and not item.get_closest_marker("services"):
            item.add_marker(pytest.mark.embedded)
