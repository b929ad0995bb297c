"""The README's production settings pass Django's deployment checks."""

import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_environment() -> dict[str, str]:
    """The variables the README's production block exports, with a real secret key."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("Production settings", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    variables = {}
    for line in block.splitlines():
        for word in shlex.split(line.removeprefix("export ")) if line.startswith("export") else []:
            name, _, value = word.partition("=")
            variables[name] = value
    variables["SECRET_KEY"] = secrets.token_urlsafe(50)
    return variables


def deploy_check(extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DJANGO_SETTINGS_MODULE="project.settings", **extra)
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_documented_production_settings_pass_check_deploy():
    environment = production_environment()
    assert {"SECURE_SSL_REDIRECT", "SECURE_COOKIES", "SECURE_HSTS_SECONDS"} <= set(environment)

    result = deploy_check(environment)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_them_check_deploy_names_what_is_missing():
    result = deploy_check({"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50)})

    assert result.returncode != 0
    assert re.search(r"security\.W0(04|08|12|16)", result.stdout + result.stderr)
