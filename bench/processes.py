"""Starting and stopping the service's processes on this machine.

Used by the benchmarks and by the end-to-end tests: a migrated database, a
token, daphne servers, worker processes, a private redis-server.
"""

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The demo user's password in these deployments (the browser tests log in with it).
DEMO_PASSWORD = "e2e-password"
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (the
    processes it starts inherit it): thousands of sockets each. Returns it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port} within {timeout} s")


def wait_for_log(path: Path, text: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{path.name} exited: {path.read_text()[-2000:]}")
        if text in path.read_text():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{path.name} did not say {text!r}: {path.read_text()[-2000:]}")


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def demo_token(env: dict) -> str:
    """Migrate the database and create the demo user; return its API token."""
    manage(env, "migrate", "--noinput", "-v", "0")
    return manage(env, "demo", "--password", DEMO_PASSWORD).split("API token:")[1].split()[0]


class RedisServer:
    """A redis-server of our own, so that it can be restarted freely."""

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
    """A new, empty PostgreSQL database; returns its URL."""
    import psycopg

    name = f"scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{POSTGRES.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    """One daphne process serving ``app`` on ``port``; it can be stopped and started again."""

    port: int
    env: dict
    log: Path
    app: str = "project.asgi:application"
    process: subprocess.Popen | None = None
    ping_interval: int = 20  # daphne's --ping-interval, as the README runs it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start daphne (again, after ``stop``: same port, same database)."""
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    # As the README runs it (its "Scaling out"): room for a reconnect storm.
                    "-e",
                    f"tcp:port={self.port}:interface=127.0.0.1:backlog=4096",
                    "--websocket_connect_timeout",
                    "30",
                    "--ping-interval",
                    str(self.ping_interval),
                    "--ping-timeout",
                    "30",
                    self.app,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.process)

    def stop(self, *, crash: bool = False) -> None:
        """Stop it: gracefully, or (``crash``) killed outright like a lost machine."""
        if self.process is None:
            return
        if crash:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@dataclass
class Deployment:
    """Processes of one deployment; ``stop`` kills them all."""

    env: dict
    logs: Path
    token: str = ""
    servers: list[Server] = field(default_factory=list)
    workers: list[subprocess.Popen] = field(default_factory=list)
    others: list = field(default_factory=list)
    redis: RedisServer | None = None

    def start_server(
        self, name: str, app: str = "project.asgi:application", ping_interval: int = 20
    ) -> Server:
        server = Server(
            port=free_port(),
            env=self.env,
            log=self.logs / f"{name}.log",
            app=app,
            ping_interval=ping_interval,
        )
        server.start()
        self.servers.append(server)
        return server

    def start_worker(self, name: str, concurrency: int = 150) -> subprocess.Popen:
        log = self.logs / f"{name}.log"
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--concurrency", str(concurrency)],
            cwd=ROOT,
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        wait_for_log(log, "ready.", worker)
        return worker

    def stop(self) -> None:
        for server in self.servers:
            server.stop(crash=True)
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        for other in self.others:
            other.stop() if hasattr(other, "stop") else other()


# A benchmark's load as one user: the emitter node, and none of the per-user limits.
UNLIMITED_EMITTER_ENV = {
    "EXTRA_INSTALLED_APPS": "bench.emitter",
    "API_EXECUTION_CREATE_RATE": "",
    "EXECUTIONS_MAX_ACTIVE_PER_USER": "0",
    "REALTIME_MAX_SOCKETS_PER_USER": "100000",
    "REALTIME_HANDSHAKE_RATE": "",
}


def base_env(**extra: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "local-deployment-secret",
        "DEBUG": "0",
    }
    # The embedded mode is the absence of Redis: don't inherit the caller's.
    env.pop("REDIS_URL", None)
    env.pop("EXECUTIONS_RUNNER", None)
    return {**env, **extra}


def embedded(directory: Path, **extra: str) -> Deployment:
    """One daphne process with SQLite, the in-memory layer and in-process runs."""
    env = base_env(DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}", **extra)
    deployment = Deployment(env=env, logs=directory)
    deployment.token = demo_token(env)
    deployment.start_server("server")
    return deployment


def distributed(
    directory: Path,
    *,
    servers: int = 2,
    workers: int = 2,
    worker_concurrency: int = 150,
    **extra: str,
) -> Deployment:
    """``servers`` daphne processes and ``workers`` workers (``worker_concurrency``
    executions each) on PostgreSQL and a private Redis."""
    redis = RedisServer(directory)
    redis.start()
    database = create_database()
    env = base_env(DATABASE_URL=database, REDIS_URL=redis.url, EXECUTIONS_RUNNER="celery", **extra)
    deployment = Deployment(
        env=env, logs=directory, others=[redis, lambda: drop_database(database)]
    )
    deployment.redis = redis
    try:
        deployment.token = demo_token(env)
        for n in range(servers):
            deployment.start_server(f"server-{n + 1}")
        for n in range(workers):
            deployment.start_worker(f"worker-{n + 1}", concurrency=worker_concurrency)
    except BaseException:
        deployment.stop()
        raise
    return deployment
