"""Real daphne processes serving the project, for end-to-end tests."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import processes

# The load tests start hundreds of executions and open hundreds of sockets as
# one user; the limits themselves are tested where they are the point.
LOAD_TEST_LIMITS = {
    "API_EXECUTION_CREATE_RATE": "",
    "EXECUTIONS_MAX_ACTIVE_PER_USER": "0",
    "REALTIME_MAX_SOCKETS_PER_USER": "1000",
}


@dataclass
class Server:
    """One served deployment as a client sees it, and the process serving it."""

    token: str
    database: Path | str
    process: processes.Server

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def ws_url(self) -> str:
        return self.process.ws_url

    @property
    def log(self) -> Path:
        return self.process.log

    @property
    def env(self) -> dict:
        return self.process.env

    @property
    def pid(self) -> int:
        return self.process.process.pid

    def start(self) -> None:
        """Start the server again after ``stop``: same port, same database."""
        self.process.start()

    def stop(self, *, crash: bool = False) -> None:
        self.process.stop(crash=crash)

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


def client_view(deployment: processes.Deployment, server: processes.Server) -> Server:
    return Server(
        token=deployment.token,
        database=deployment.env["DATABASE_URL"].removeprefix("sqlite:///"),
        process=server,
    )


@pytest.fixture
def server_env() -> dict:
    """Settings (environment variables) for the ``server``; a test module may override it."""
    return {}


@pytest.fixture
def server(tmp_path, server_env):
    """A fresh SQLite database served by one daphne on a free port (the embedded mode)."""
    with serve(tmp_path, server_env) as running:
        yield running


@contextmanager
def serve(tmp_path: Path, server_env: dict) -> Iterator[Server]:
    """The ``server`` fixture's work, for fixtures of other scopes."""
    deployment = processes.embedded(tmp_path, **{**LOAD_TEST_LIMITS, **server_env})
    try:
        yield client_view(deployment, deployment.servers[0])
    finally:
        deployment.stop()


from tests.e2e.cluster import cluster  # noqa: E402, F401  the scaled-out deployment fixture
