"""What the serving process sets up for itself."""

import asyncio
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from channels.testing import HttpCommunicator
from django.core.signals import request_started
from django.db.backends.signals import connection_created

from executions.runtime import (
    check_malloc_arenas,
    check_switch_interval,
    tune_thread_switching,
)
from project.asgi import application, django_asgi_app
from project.health import HealthRoutes
from project.http import ThreadedHTTPHandler
from project.limits import ConcurrentRequestLimit
from project.metrics import MetricsRoute
from realtime.longpoll import LongPollRoute
from realtime.sse import EventStreams


@pytest.mark.django_db(transaction=True)
async def test_requests_run_in_long_lived_threads_that_keep_their_connection():
    threads, opened = [], []

    def record_thread(sender, **kwargs):
        threads.append(threading.current_thread().name)

    def record_connection(sender, connection, **kwargs):
        opened.append(connection)

    # A fresh pool: threads that earlier tests' requests left with a connection
    # would open none here.
    django_asgi_app.close()
    request_started.connect(record_thread)
    connection_created.connect(record_connection)
    try:
        for _ in range(6):
            # An unknown token is looked up in the database, then refused.
            communicator = HttpCommunicator(
                django_asgi_app,
                "GET",
                "/api/v1/workflows",
                headers=[(b"host", b"localhost"), (b"authorization", b"Bearer no-such-token")],
            )
            response = await communicator.get_response()
            assert response["status"] == 401
            await communicator.wait(1)
    finally:
        request_started.disconnect(record_thread)
        connection_created.disconnect(record_connection)
    # One after another, the requests ran in a pool thread or two, each thread
    # on one connection of its own.
    assert all(name.startswith("http") for name in threads)
    assert len(opened) == len(set(threads)) < 6


@pytest.mark.django_db(transaction=True)
async def test_a_request_is_one_trip_to_its_thread(monkeypatch):
    trips = []
    original = ThreadedHTTPHandler.respond

    def respond(self, scope, body_file):
        trips.append(threading.current_thread().name)
        return original(self, scope, body_file)

    monkeypatch.setattr(ThreadedHTTPHandler, "respond", respond)
    communicator = HttpCommunicator(
        django_asgi_app, "GET", "/api/v1/workflows", headers=[(b"host", b"localhost")]
    )
    response = await communicator.get_response()
    assert response["status"] == 401
    assert len(trips) == 1


class Counting:
    """An ASGI app that notes how many of its calls run at once."""

    def __init__(self):
        self.running = self.peak = 0

    async def __call__(self, scope, receive, send):
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1
        await send({"type": "done", "scope": scope["type"]})


async def test_at_most_the_limit_of_http_requests_run_at_once_and_the_rest_wait():
    inner = Counting()
    limited = ConcurrentRequestLimit(inner, limit=3)
    sent = []

    async def send(message):
        sent.append(message)

    await asyncio.gather(*[limited({"type": "http"}, None, send) for _ in range(20)])

    assert inner.peak == 3
    assert len(sent) == 20  # every request was served, none refused


async def test_sockets_and_a_zero_limit_are_not_held_back():
    for scope_type, limit in (("websocket", 3), ("http", 0)):
        inner = Counting()
        limited = ConcurrentRequestLimit(inner, limit=limit)

        async def send(message):
            pass

        await asyncio.gather(*[limited({"type": scope_type}, None, send) for _ in range(10)])
        assert inner.peak == 10, scope_type


def test_the_served_application_bounds_its_http_requests_but_not_their_waits():
    metrics = application.app.application_mapping["http"]
    assert isinstance(metrics, MetricsRoute)  # scrapes, like health checks, are never held
    health = metrics.app
    assert isinstance(health, HealthRoutes)  # before any limit or authentication
    streams = health.app
    assert isinstance(streams, EventStreams)  # SSE: the sockets' consumers
    assert streams.socket_app is application.app.application_mapping["websocket"]
    route = streams.http_app
    assert isinstance(route, LongPollRoute)
    assert route.app is django_asgi_app  # long-polls: their thread time is the pool's
    http = route.limited
    assert isinstance(http, ConcurrentRequestLimit)
    assert http.app is django_asgi_app
    assert http.limit == 16


@pytest.fixture
def restored_switch_interval():
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("restored_switch_interval")
def test_thread_switching_follows_its_setting(settings):
    settings.PROCESS_SWITCH_INTERVAL = 0.002
    tune_thread_switching()
    assert sys.getswitchinterval() == pytest.approx(0.002)


def test_the_default_switch_interval_is_shorter_than_pythons(settings):
    assert settings.PROCESS_SWITCH_INTERVAL < 0.005
    assert check_switch_interval() == []


@pytest.mark.parametrize("value", [0, -1, 0.5, "fast", None])
def test_a_switch_interval_that_cannot_work_fails_the_checks(settings, value):
    settings.PROCESS_SWITCH_INTERVAL = value
    [error] = check_switch_interval()
    assert error.id == "executions.E110"
    assert "PROCESS_SWITCH_INTERVAL" in error.msg


# Eight threads alive at once, each allocating, then glibc's count of its arenas
# (malloc_stats prints one "Arena N:" line each to standard error).
ARENAS_PROBE = """
import ctypes, sys, threading
{setup}
barrier = threading.Barrier(8)
def work():
    kept = [bytearray(2000) for _ in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""
SERVED_SETUP = "import daphne.cli, project.asgi"
BARE_SETUP = "import django; django.setup()"


def arenas_of(setup: str, **env: str) -> int:
    run = subprocess.run(
        [sys.executable, "-c", ARENAS_PROBE.format(setup=setup)],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return sum(1 for line in run.stderr.splitlines() if line.startswith("Arena "))


glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")


@glibc_only
def test_a_served_process_keeps_at_most_its_setting_of_malloc_arenas():
    assert arenas_of(SERVED_SETUP) <= 2
    assert arenas_of(SERVED_SETUP, PROCESS_MALLOC_ARENAS="3") <= 3


@glibc_only
def test_without_the_limit_each_busy_thread_gets_an_arena():
    # What the setting changes: glibc's default, and the same with 0.
    assert arenas_of(BARE_SETUP) > 4
    assert arenas_of(SERVED_SETUP, PROCESS_MALLOC_ARENAS="0") > 4


def test_the_default_keeps_two_arenas(settings):
    assert settings.PROCESS_MALLOC_ARENAS == 2
    assert check_malloc_arenas() == []


@pytest.mark.parametrize("value", [-1, 2000, 1.5, "two", None, True])
def test_an_arena_count_that_cannot_work_fails_the_checks(settings, value):
    settings.PROCESS_MALLOC_ARENAS = value
    [error] = check_malloc_arenas()
    assert error.id == "executions.E111"
    assert "PROCESS_MALLOC_ARENAS" in error.msg
