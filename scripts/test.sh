#!/usr/bin/env bash
# Install what the tests need into .venv, check style, and run the whole suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# pytest exits 5 when it ran no test; set -e makes that a failure too.
.venv/bin/pytest "$@"
