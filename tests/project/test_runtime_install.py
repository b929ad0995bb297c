"""The service installs, migrates and serves with requirements.txt alone.

A fresh virtualenv gets the runtime requirements and nothing else; the
tests' and benchmarks' tools (requirements-dev.txt) must not be among them,
and none of them may be needed to migrate, start daphne and run a workflow.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = "requirements.txt"
DEVELOPMENT_ONLY = ["pytest", "playwright", "hypothesis", "schemathesis", "matplotlib", "ruff"]

pytestmark = [pytest.mark.embedded, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def runtime_python(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("runtime")
    subprocess.run([sys.executable, "-m", "venv", where / "venv"], check=True, timeout=120)
    python = where / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", REQUIREMENTS],
        cwd=ROOT,
        check=True,
        timeout=480,
    )
    return python


def run(python: Path, env: dict, *args: str) -> str:
    return subprocess.run(
        [python, *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=120
    ).stdout


def get(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict | str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def test_no_tool_of_the_tests_is_installed(runtime_python):
    for module in DEVELOPMENT_ONLY:
        found = subprocess.run(
            [runtime_python, "-c", f"import {module}"], capture_output=True, timeout=60
        )
        assert found.returncode == 1, f"{module} is a development requirement"


def test_it_migrates_serves_and_runs_a_workflow(runtime_python, tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "runtime-install-secret",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    run(runtime_python, env, "manage.py", "migrate", "--noinput", "-v", "0")
    token = run(runtime_python, env, "manage.py", "demo").split("API token:")[1].split()[0]
    port = free_port()
    with (tmp_path / "daphne.log").open("w") as log:
        daphne = subprocess.Popen(
            [runtime_python, "-m", "daphne", "-p", str(port), "project.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, daphne)
        url = f"http://127.0.0.1:{port}"
        assert get(url + "/healthz")[0] == 200
        status, ready = get(url + "/readyz")
        assert status == 200, ready
        status, workflows = get(url + "/api/v1/workflows/", token)
        assert status == 200 and workflows["results"], workflows
        workflow = workflows["results"][0]["id"]
        status, created = get(url + "/api/v1/executions", token, {"workflow_id": workflow})
        assert status == 201, created
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            execution = get(url + f"/api/v1/executions/{created['id']}", token)[1]
            if execution["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.2)
        assert execution["status"] == "completed", execution
    finally:
        daphne.terminate()
        daphne.wait(timeout=10)
