"""``workflow-push watch`` installed alone (``pip install ./clients/python`` in a fresh
virtualenv: no Django) against the real server."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.processes import ROOT
from tests.clients.conftest import start
from tests.e2e.test_cli import BAR, expected_lines
from tests.factories import chain, node

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Path:
    """The ``workflow-push`` command of a fresh virtualenv that has the client alone."""
    where = tmp_path_factory.mktemp("console")
    # A copy: building in place would leave build files in the repository.
    source = shutil.copytree(
        ROOT / "clients" / "python",
        where / "client",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    subprocess.run([sys.executable, "-m", "venv", where / "venv"], check=True, timeout=120)
    python = where / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", source],
        check=True,
        timeout=300,
    )
    no_django = subprocess.run([python, "-c", "import django"], capture_output=True, timeout=60)
    assert no_django.returncode == 1, "the client must not need Django"
    return where / "venv" / "bin" / "workflow-push"


def watch(console: Path, live, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    # Not the suite's environment: no settings module, nothing of the project's importable.
    env = {"PATH": os.environ["PATH"], "WORKFLOW_PUSH_TOKEN": token or live.token}
    return subprocess.run(
        [console, "watch", *args, "--url", live.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=console.parent,
    )


def test_watch_prints_every_event_of_a_run_then_its_result(console, live, steps):
    execution_id = start(live, steps)

    done = watch(console, live, execution_id, "--from-start")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    printed = [line for line in lines if line.startswith(("  node", "  log"))]
    assert printed == expected_lines(live, execution_id)
    bars = [BAR.match(line).groups() for line in lines if BAR.match(line)]
    assert bars[0] == ("0", "pending", "Waiting to run")
    assert bars[-1][:2] == ("100", "completed")
    assert lines[-1] == 'result: {"echo": "hi"}'

    # Over long polls alone (no snapshot there: it starts from the first event too).
    polled = watch(console, live, execution_id, "--transport", "longpoll")
    assert (polled.returncode, polled.stdout) == (0, done.stdout), polled.stderr


def test_watch_exits_1_when_the_run_fails_and_2_when_it_is_refused(console, live):
    status, workflow = live.request(
        "POST",
        "/api/v1/workflows",
        {"name": "console broken", "definition": chain(node("boom", "fail", message="no"))},
    )
    assert status == 201, workflow

    failed = watch(console, live, start(live, workflow))
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[-1] == "error: Node 'boom' failed: no"
    assert failed.stderr == "The execution failed.\n"

    missing = watch(console, live, str(uuid.uuid4()))
    assert missing.returncode == 2
    assert "refused the stream (4404)" in missing.stderr
    stranger = watch(console, live, str(uuid.uuid4()), token="wrong")
    assert (stranger.returncode, "(4401)" in stranger.stderr) == (2, True)
