"""Real headless Chromium (Debian's ``chromium`` package) driven by Playwright."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import server, server_env  # noqa: F401  the real daphne fixture

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip without Chromium; with REQUIRE_SERVICES=1 (as in CI) fail instead."""
    if CHROMIUM.exists():
        return
    message = f"needs Chromium at {CHROMIUM}: apt-get install -y chromium"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context):
    return context.new_page()
