"""A scaled-out deployment on one machine: PostgreSQL, a private Redis, two
ASGI servers and two worker processes."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    LOAD_TEST_LIMITS,
    ROOT,
    Server,
    free_port,
    manage,
    wait_for_port,
)

POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def require_services() -> None:
    """Skip (or, with REQUIRE_SERVICES=1 as in CI, fail) when PostgreSQL or Redis is missing."""
    problems = []
    if shutil.which("redis-server") is None:
        problems.append("redis-server is not installed")
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        problems.append("PostgreSQL is not listening on 127.0.0.1:5432")
    if problems:
        message = "needs PostgreSQL and Redis: " + "; ".join(problems)
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


class RedisServer:
    """A redis-server of the test's own, so that it can be restarted freely."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


def create_database() -> str:
    import psycopg

    name = f"cluster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Cluster:
    env: dict
    redis: RedisServer
    servers: list[Server]
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: Path = Path()
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, name: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--concurrency", "150", "--loglevel", "INFO"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        self.processes.append(worker)
        wait_for_log(self.logs / f"{name}.log", "ready.", worker)
        return worker

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(10)
        self.redis.stop()


def wait_for_log(path: Path, text: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{path.name} exited: {path.read_text()[-2000:]}")
        if text in path.read_text():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{path.name} did not say {text!r}: {path.read_text()[-2000:]}")


@pytest.fixture
def cluster(tmp_path):
    require_services()
    redis = RedisServer(tmp_path)
    redis.start()
    database = create_database()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "cluster-secret",
        "DEBUG": "0",
        "DATABASE_URL": f"{POSTGRES.rsplit('/', 1)[0]}/{database}",
        "REDIS_URL": redis.url,
        "EXECUTIONS_RUNNER": "celery",
        "EXECUTIONS_LEASE_SECONDS": "3",
        "EXECUTIONS_REAPER_INTERVAL": "1",
        "EXECUTIONS_REDISPATCH_AFTER": "5",
        **LOAD_TEST_LIMITS,
    }
    manage(env, "migrate", "--noinput", "-v", "0")
    token = manage(env, "demo", "--password", "cluster-pass").split("API token:")[1].split()[0]
    cluster = Cluster(env=env, redis=redis, servers=[], logs=tmp_path)
    try:
        for name in ("server-a", "server-b"):
            port = free_port()
            log = (tmp_path / f"{name}.log").open("w")
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "project.asgi:application",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            cluster.processes.append(process)
            wait_for_port(port, process)
            cluster.servers.append(
                Server(
                    url=f"http://127.0.0.1:{port}",
                    ws_url=f"ws://127.0.0.1:{port}",
                    token=token,
                    database=Path(database),
                    log=tmp_path / f"{name}.log",
                    pid=process.pid,
                )
            )
        cluster.start_worker("worker-1")
        cluster.start_worker("worker-2")
        yield cluster
    finally:
        cluster.stop()
        drop_database(database)
