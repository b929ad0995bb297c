"""Real daphne processes serving the project, for end-to-end tests."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import processes


@dataclass
class Server:
    """One served deployment as a client sees it."""

    url: str
    ws_url: str
    token: str
    database: Path | str
    log: Path

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
        url=server.url,
        ws_url=server.ws_url,
        token=deployment.token,
        database=deployment.env["DATABASE_URL"].removeprefix("sqlite:///"),
        log=server.log,
    )


@pytest.fixture
def server(tmp_path):
    """A fresh SQLite database served by one daphne on a free port (the embedded mode)."""
    deployment = processes.embedded(tmp_path)
    try:
        yield client_view(deployment, deployment.servers[0])
    finally:
        deployment.stop()


from tests.e2e.cluster import cluster  # noqa: E402, F401  the scaled-out deployment fixture
