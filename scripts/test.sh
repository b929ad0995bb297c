#!/usr/bin/env bash
# Install what the tests need into .venv, check style, and run the whole suite:
# once in the embedded mode (SQLite, in-memory channel layer), then again on
# PostgreSQL and Redis when they are reachable (with REQUIRE_SERVICES=1, as
# in CI, their absence is a failure rather than a skip). Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/ruff check .
# The JavaScript package's development dependencies (tsc, esbuild, vue, react), for
# tests/js: installed from its lock, again only when the lock changed.
if command -v npm >/dev/null; then
    if ! cmp -s clients/js/package-lock.json clients/js/node_modules/.installed-lock.json; then
        (cd clients/js && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
        cp clients/js/package-lock.json clients/js/node_modules/.installed-lock.json
    fi
elif [ "${REQUIRE_SERVICES:-0}" = "1" ]; then
    echo "FAILED: npm is required (apt-get install -y nodejs npm)" >&2
    exit 1
fi
.venv/bin/ruff format --check .

# The message catalogs (locale/*/LC_MESSAGES/*.po), compiled as the servers read them.
if command -v msgfmt >/dev/null || [ "${REQUIRE_SERVICES:-0}" = "1" ]; then
    DJANGO_SETTINGS_MODULE=tests.settings .venv/bin/python manage.py compilemessages --ignore='.*' -v 0
else
    echo "Not compiling the message catalogs: GNU gettext's msgfmt is missing (apt-get install -y gettext);" \
         "the tests of the translations are skipped."
fi

POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS_URL_FOR_TESTS="${TEST_REDIS_URL:-redis://127.0.0.1:6379/14}"

reachable() {  # host port
    .venv/bin/python -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)" "$1" "$2" 2>/dev/null
}

echo "== Embedded mode: SQLite, in-memory channel layer, executions in-process"
# (Tests marked "embedded" start their own embedded server and run in this pass only.)
# pytest exits 5 when it ran no test; set -e makes that a failure too.
.venv/bin/pytest -m "not services" "$@"

if reachable 127.0.0.1 5432 && reachable 127.0.0.1 6379 && command -v redis-server >/dev/null; then
    echo "== Services: the whole suite again on PostgreSQL and Redis"
    DATABASE_URL="$POSTGRES_URL" REDIS_URL="$REDIS_URL_FOR_TESTS" TEST_REDIS_URL="$REDIS_URL_FOR_TESTS" \
        EXECUTIONS_RUNNER=inprocess REQUIRE_SERVICES=1 .venv/bin/pytest -m "not embedded" "$@"
elif [ "${REQUIRE_SERVICES:-0}" = "1" ]; then
    echo "FAILED: PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379, redis-server) are required" >&2
    exit 1
else
    echo "SKIPPED: the PostgreSQL and Redis tests (multi-process cluster, Redis layer):" \
         "PostgreSQL at 127.0.0.1:5432 or Redis at 127.0.0.1:6379 is not reachable."
fi
