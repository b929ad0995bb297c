#!/usr/bin/env bash
# Set up a fresh machine and start the service on port 8037 with a demo user
# and workflow. Needs nothing but Python 3.11+: SQLite, the in-memory channel
# layer and in-process executions are the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
export DEBUG="${DEBUG:-1}"
.venv/bin/python manage.py migrate --noinput -v 0
if command -v msgfmt >/dev/null; then
    .venv/bin/python manage.py compilemessages --ignore='.*' -v 0
else
    echo "The dashboard is in English only until GNU gettext is installed (apt-get install -y gettext)."
fi
.venv/bin/python manage.py demo
echo "Serving on http://127.0.0.1:8037 (Ctrl-C stops it)"
exec .venv/bin/daphne -e tcp:port=8037:interface=127.0.0.1:backlog=4096 --websocket_connect_timeout 30 --ping-interval 20 --ping-timeout 30 project.asgi:application
