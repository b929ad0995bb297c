"""A scaled-out deployment on one machine: PostgreSQL, a private Redis, two
ASGI servers and two worker processes."""

import subprocess
from dataclasses import dataclass

import pytest

from bench import processes
from tests.services import require_postgres_and_redis


@dataclass
class Cluster:
    env: dict
    redis: processes.RedisServer
    servers: list  # client views (tests.e2e.conftest.Server)
    workers: list[subprocess.Popen]


@pytest.fixture
def cluster(tmp_path):
    """Two servers and two workers on PostgreSQL and a Redis of their own."""
    from tests.e2e.conftest import LOAD_TEST_LIMITS, client_view

    require_postgres_and_redis()
    deployment = processes.distributed(
        tmp_path,
        EXECUTIONS_LEASE_SECONDS="3",
        EXECUTIONS_REAPER_INTERVAL="1",
        EXECUTIONS_REDISPATCH_AFTER="5",
        **LOAD_TEST_LIMITS,
    )
    try:
        yield Cluster(
            env=deployment.env,
            redis=deployment.redis,
            servers=[client_view(deployment, server) for server in deployment.servers],
            workers=deployment.workers,
        )
    finally:
        deployment.stop()
