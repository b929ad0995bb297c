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
