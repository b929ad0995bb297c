"""The JavaScript package (clients/js) against the real server: in Chromium behind a
proxy (proxy.py), and its type declarations through ``tsc``.

``clients/js/node_modules`` is installed by scripts/test.sh (``npm ci``); without it
these tests are skipped with a reason, or fail with REQUIRE_SERVICES=1 (as in CI).
"""

import os
import subprocess
from pathlib import Path

import pytest

from tests.browser.conftest import browser, context, page  # noqa: F401  Chromium
from tests.e2e.conftest import server  # noqa: F401  the real daphne fixture
from tests.js.proxy import Proxy

PACKAGE = Path(__file__).resolve().parents[2] / "clients/js"
NODE_MODULES = PACKAGE / "node_modules"


def require_node_modules() -> None:
    if (NODE_MODULES / ".bin/tsc").exists() and (NODE_MODULES / ".bin/esbuild").exists():
        return
    message = f"needs {NODE_MODULES}: (cd clients/js && npm ci), as scripts/test.sh does"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def server_env() -> dict:
    # A healthy event stream is heard from twice a second; tests/browser/streaming
    # has the node that streams its output.
    return {"REALTIME_SSE_HEARTBEAT": "0.5", "EXTRA_INSTALLED_APPS": "tests.browser.streaming"}


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> Path:
    """Where a test's bundles go (``bundle``), served by the proxy at /__test__/bundles/."""
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture
def proxy(server, bundles):  # noqa: F811  the imported fixture
    running = Proxy(
        int(server.url.rsplit(":", 1)[1]), {"js": PACKAGE / "src", "bundles": bundles}
    ).start()
    try:
        yield running
    finally:
        running.stop()


def bundle(bundles: Path, name: str, source: str) -> str:
    """``source`` (an ES module importing workflow-push, vue, react) bundled by esbuild
    as /__test__/bundles/<name>.js; its path on the proxy."""
    require_node_modules()
    entry = bundles / f"{name}.entry.js"
    entry.write_text(source)
    link = bundles / "node_modules/workflow-push"
    if not link.exists():
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(PACKAGE)
    subprocess.run(
        [
            str(NODE_MODULES / ".bin/esbuild"),
            str(entry),
            "--bundle",
            "--format=esm",
            f"--outfile={bundles / f'{name}.js'}",
            '--define:process.env.NODE_ENV="development"',
            "--define:__VUE_OPTIONS_API__=false",
            "--define:__VUE_PROD_DEVTOOLS__=false",
            "--define:__VUE_PROD_HYDRATION_MISMATCH_DETAILS__=false",
            "--log-level=warning",
        ],
        check=True,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        timeout=60,
    )
    return f"/__test__/bundles/{name}.js"
