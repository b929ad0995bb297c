"""Take the dashboard screenshots in docs/ with headless Chromium.

    .venv/bin/python scripts/screenshots.py

Serves a fresh SQLite database with daphne on a free port, logs in as the
demo user, starts a workflow from its page and photographs the execution
mid-run and finished, the executions list and the workflow editor. Needs
Debian's chromium (apt-get install -y chromium).
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPORT = {
    "nodes": [
        {"id": "extract", "type": "log", "params": {"message": "Extracting 2 sources"}},
        {"id": "orders", "type": "delay", "params": {"seconds": 1.5}},
        {"id": "customers", "type": "delay", "params": {"seconds": 3}},
        {"id": "late", "type": "log", "params": {"message": "2 late rows", "level": "warning"}},
        {"id": "join", "type": "transform", "params": {"expression": "{day: orders.day}"}},
        {"id": "ready", "type": "condition", "params": {"expression": "day"}},
        {"id": "publish", "type": "log", "params": {"message": "Report published"}},
    ],
    "edges": [
        {"source": "extract", "target": "orders"},
        {"source": "extract", "target": "customers"},
        {"source": "orders", "target": "late"},
        {"source": "orders", "target": "join"},
        {"source": "customers", "target": "join"},
        {"source": "join", "target": "ready"},
        {"source": "ready", "target": "publish"},
    ],
}


IMPORT = {
    "nodes": [
        {"id": "fetch", "type": "log", "params": {"message": "Fetching the partner feed"}},
        {
            "id": "validate",
            "type": "fail",
            "params": {"message": "feed has no 'orders' key"},
            "retries": 1,
            "retry_backoff_seconds": 0.2,
        },
        {"id": "store", "type": "transform", "params": {"expression": "orders"}},
    ],
    "edges": [
        {"source": "fetch", "target": "validate"},
        {"source": "validate", "target": "store"},
    ],
}


DESCRIPTIONS = {
    "nightly-report": "Joins the day's orders and customers and publishes a report.",
    "import-partners": "Fetches a partner's feed, validates it and stores its orders.",
}


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def serve(env: dict) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "project.asgi:application",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("daphne did not start")


def create_workflow(page, url: str, name: str, definition: str) -> None:
    page.goto(f"{url}/workflows/new/")
    page.fill("#name", name)
    page.fill("#description", DESCRIPTIONS[name])
    page.fill("#definition", definition)
    page.click("#save")
    page.wait_for_url("**/workflows/*/?created=1")


def start(page, input_json: str) -> None:
    page.fill("#input_data", input_json)
    page.click("#start")
    page.wait_for_url("**/executions/*/")


def photograph(page, url: str) -> None:
    import json

    page.goto(f"{url}/login/")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo-password")
    page.click("main button[type=submit]")  # the login form's (the header has the language switch)
    page.wait_for_url(f"{url}/")

    create_workflow(page, url, "nightly-report", json.dumps(REPORT, indent=2))
    workflow_page = page.url.split("?")[0]
    start(page, '{"day": "2026-11-28"}')
    expect(page.locator('[data-node-id="orders"]')).to_have_attribute("data-status", "completed")
    expect(page.locator('[data-node-id="late"]')).to_have_attribute("data-status", "completed")
    page.screenshot(path=DOCS / "dashboard-running.png", animations="disabled", full_page=True)
    expect(page.locator("#status")).to_have_attribute("data-status", "completed", timeout=20_000)
    page.locator("#result").scroll_into_view_if_needed()
    page.screenshot(path=DOCS / "dashboard-finished.png", animations="disabled", full_page=True)

    # A failed and a running execution beside the completed ones, for the list.
    page.goto(workflow_page)
    start(page, '{"day": null}')
    create_workflow(page, url, "import-partners", json.dumps(IMPORT, indent=2))
    start(page, '{"partner": "acme"}')
    expect(page.locator("#status")).to_have_attribute("data-status", "failed")
    page.goto(f"{url}/workflows/")
    page.click("#workflows >> text=demo")
    start(page, '{"input": "test"}')
    page.goto(f"{url}/")
    expect(page.locator("#executions tbody tr")).to_have_count(4)
    expect(page.locator("#executions tbody tr").first).to_have_attribute("data-status", "running")
    page.screenshot(path=DOCS / "dashboard-executions.png", animations="disabled")

    page.goto(workflow_page)
    page.fill("#definition", json.dumps({"nodes": [{"id": "a", "type": "sleep", "params": {}}]}))
    page.click("#save")
    expect(page.locator('[data-error-for="definition"]')).not_to_be_empty()
    page.screenshot(path=DOCS / "dashboard-workflow.png", animations="disabled", full_page=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": "screenshots",
            "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
        }
        env.pop("REDIS_URL", None)
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "demo")
        server, url = serve(env)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                photograph(page, url)
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    print(f"Screenshots written to {DOCS}")


if __name__ == "__main__":
    main()
