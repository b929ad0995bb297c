"""Reaching the real PostgreSQL and Redis that some tests are about."""

import os
import socket
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or default_port), timeout=1).close()
    except OSError:
        return False
    return True


def require_redis() -> str:
    """The test Redis URL; skips the test (fails it with REQUIRE_SERVICES=1) without Redis."""
    if not reachable(REDIS_URL, 6379):
        message = f"needs Redis at {REDIS_URL}"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


def require_postgres_and_redis() -> None:
    """Skips (fails with REQUIRE_SERVICES=1) without PostgreSQL or a redis-server to start."""
    import shutil

    problems = []
    if shutil.which("redis-server") is None:
        problems.append("redis-server is not installed")
    if not reachable("postgres://127.0.0.1:5432", 5432):
        problems.append("PostgreSQL is not listening on 127.0.0.1:5432")
    if problems:
        message = "needs PostgreSQL and Redis: " + "; ".join(problems)
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
