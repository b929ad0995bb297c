"""A real daphne process serving the project, for end-to-end tests."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The load tests start hundreds of executions and open hundreds of sockets as
# one user; the limits themselves are tested where they are the point.
LOAD_TEST_LIMITS = {"API_EXECUTION_CREATE_RATE": "", "REALTIME_MAX_SOCKETS_PER_USER": "1000"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


@dataclass
class Server:
    url: str
    ws_url: str
    token: str
    database: Path
    log: Path
    pid: int

    def request(self, method: str, path: str, body=None) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def server_env() -> dict:
    """Settings (environment variables) for the ``server``; a test module may override it."""
    return {}


@pytest.fixture
def server(tmp_path, server_env):
    """Migrate a fresh SQLite database and serve it with daphne on a free port."""
    with serve(tmp_path, server_env) as running:
        yield running


@contextmanager
def serve(tmp_path: Path, server_env: dict) -> Iterator[Server]:
    """The ``server`` fixture's work, for fixtures of other scopes."""
    database = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "e2e-secret",
        "DEBUG": "0",
        "DATABASE_URL": f"sqlite:///{database}",
        **LOAD_TEST_LIMITS,
        **server_env,
    }
    env.pop("REDIS_URL", None)
    manage(env, "migrate", "--noinput", "-v", "0")
    output = manage(env, "demo", "--password", "e2e-password")
    token = output.split("API token:")[1].split()[0]
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                # daphne's defaults, as the README runs it.
                "--ping-interval",
                "20",
                "--ping-timeout",
                "30",
                "project.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
        yield Server(
            url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}",
            token=token,
            database=database,
            log=log,
            pid=process.pid,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


from tests.e2e.cluster import cluster  # noqa: E402, F401  the scaled-out deployment fixture
