"""Metrics on the real processes: present and moving under a small load in both modes,
read by a real Prometheus with the configuration in docs/prometheus, which passes promtool."""

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import websockets
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench import processes
from tests.e2e.test_slow_consumers import OUTPUT_SIZE, open_not_reading, start_executions
from tests.factories import chain, node
from tests.services import require_postgres_and_redis

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DOCS = ROOT / "docs" / "prometheus"
TOKEN = "e2e-metrics-token-0123456789"
ENV = {
    "METRICS_TOKEN": TOKEN,
    # A client that stops reading is cut off soon (its stall and its 4408 are measured).
    "REALTIME_SEND_BUFFER_BYTES": str(128 * 1024),
    "REALTIME_SEND_TIMEOUT": "1",
    "EXECUTIONS_EVENT_OUTPUT_LIMIT": str(OUTPUT_SIZE + 100),
}
# Long enough for the run to renew its lease (about once a second) and for each
# loop's lag to be measured (every 0.5 s) while sockets follow it.
STEPS = chain(
    node("hello", "log", message="hello", level="info"),
    node("wait", "delay", seconds=1.5),
    node("pick", "transform", expression="n"),
)

Samples = dict[tuple[str, tuple], float]


def read_metrics(url: str) -> Samples:
    """Every sample of the page at ``url``, by name and labels; parsed as Prometheus would."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        page = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in after, f"{name}{labels} is not on the page"
    return after[key] - before.get(key, 0.0)


def start(server, definition: dict, input_data: dict) -> str:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "metrics", "definition": definition}
    )
    assert status == 201, workflow
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": input_data}
    )
    assert status == 201, execution
    return execution["id"]


async def follow(server, execution_id: str, waiting: asyncio.Event) -> tuple[list[dict], int]:
    """One socket on the execution, from its first event to its close (with a ping on
    the way); ``waiting`` is set once its ``wait`` node runs."""
    url = f"{server.ws_url}/api/v1/ws/executions/{execution_id}?last_seq=0"
    headers = {"Authorization": f"Bearer {server.token}"}
    messages = []
    async with websockets.connect(url, additional_headers=headers) as socket:
        await socket.send(json.dumps({"type": "ping"}))
        async for frame in socket:
            messages.append(json.loads(frame))
            if messages[-1].get("node_id") == "wait" and messages[-1]["status"] == "running":
                waiting.set()
    return messages, socket.close_code


def stream(server, execution_id: str) -> str:
    """The execution's event stream (SSE), read to its end."""
    request = urllib.request.Request(
        f"{server.url}/api/v1/executions/{execution_id}/stream",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


async def refused(server) -> int:
    """A socket without credentials: refused with 4401."""
    async with websockets.connect(f"{server.ws_url}/api/v1/ws") as socket:
        with contextlib.suppress(websockets.ConnectionClosedError):
            async for _ in socket:
                pass
    return socket.close_code


async def small_load(server, during) -> None:
    """A run followed over a socket and an event stream, and a refused socket;
    ``during()`` is called while the run waits in its ``wait`` node."""
    execution_id = start(server, STEPS, {"n": 7})
    waiting = asyncio.Event()

    async def mid_run() -> None:
        await waiting.wait()
        await asyncio.to_thread(during)

    (messages, code), text, refusal, _ = await asyncio.gather(
        follow(server, execution_id, waiting),
        asyncio.to_thread(stream, server, execution_id),
        refused(server),
        mid_run(),
    )
    assert code == 1000 and messages[-1]["status"] == "completed", messages
    assert "event: status" in text and '"status": "completed"' in text
    assert refusal == 4401


def assert_busy(page: Samples, *, server: bool = True, runner: bool = True) -> None:
    """What a page shows while the load's execution runs, followed by its socket."""
    if server:
        assert page[("workflows_sockets_open", (("transport", "websocket"),))] >= 1
        assert page[("workflows_subscriptions", (("kind", "execution"),))] >= 1
    if runner:
        assert page[("workflows_executions_running", ())] >= 1


def assert_server_moved(before: Samples, after: Samples) -> None:
    for transport in ("websocket", "sse"):
        assert moved(before, after, "workflows_socket_connects_total", transport=transport) >= 1
        for kind in ("status", "node"):
            sent = moved(
                before, after, "workflows_messages_sent_total", transport=transport, type=kind
            )
            assert sent >= 1, (transport, kind)
        assert moved(before, after, "workflows_sockets_open", transport=transport) == 0
    assert (
        moved(before, after, "workflows_messages_sent_total", transport="websocket", type="pong")
        == 1
    )
    ws_ended = moved(
        before, after, "workflows_socket_closes_total", transport="websocket", code="1000"
    )
    assert ws_ended >= 1
    for terminal in ("true", "false"):
        pushed = moved(before, after, "workflows_push_latency_seconds_count", terminal=terminal)
        assert pushed >= 1, terminal
    refusals = moved(
        before,
        after,
        "workflows_socket_handshakes_refused_total",
        transport="websocket",
        reason="unauthenticated",
    )
    assert refusals == 1
    created = moved(
        before,
        after,
        "workflows_http_requests_total",
        route="execution-list",
        method="POST",
        status="201",
    )
    assert created >= 1
    assert (
        moved(
            before, after, "workflows_http_request_duration_seconds_count", route="execution-list"
        )
        >= 1
    )
    assert moved(before, after, "workflows_subscriptions", kind="execution") == 0
    assert moved(before, after, "workflows_event_loop_lag_seconds_count", loop="server") >= 1
    # Present, at zero until something goes wrong (moved in tests/realtime/test_metrics.py).
    for name in ("workflows_gap_fills_total", "workflows_watchdog_catch_ups_total"):
        assert moved(before, after, name) >= 0
    for reason in ("queue_full", "expired", "publish_failed", "inbox_full"):
        assert moved(before, after, "workflows_channel_layer_drops_total", reason=reason) >= 0


def assert_runner_moved(before: Samples, after: Samples) -> None:
    assert moved(before, after, "workflows_executions_claimed_total") >= 1
    assert moved(before, after, "workflows_executions_finished_total", status="completed") >= 1
    for kind in ("status", "node", "log"):
        assert moved(before, after, "workflows_events_recorded_total", type=kind) >= 1, kind
    for kind in ("record", "state"):
        assert moved(before, after, "workflows_event_commit_seconds_count", kind=kind) >= 1, kind
    assert moved(before, after, "workflows_record_batch_size_count") >= 1
    assert moved(before, after, "workflows_lease_renewals_total") >= 1
    assert moved(before, after, "workflows_event_loop_lag_seconds_count", loop="runner") >= 1
    assert after[("workflows_executions_running", ())] == 0
    for name in (
        "workflows_lease_expiries_total",
        "workflows_claims_lost_total",
        "workflows_execution_reruns_total",
    ):
        assert moved(before, after, name) >= 0  # present (moved in tests/executions)


async def stall_one_reader(server, url: str) -> None:
    """A socket whose client stops reading a bulky stream: it stalls, then gets 4408."""
    before = read_metrics(url)
    [execution_id] = start_executions(server, 1, nodes=30)
    stalled = await open_not_reading(server, execution_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = read_metrics(url)
        if moved(before, after, "workflows_slow_reader_closes_total", transport="websocket"):
            break
        await asyncio.sleep(0.2)
    await stalled.close()
    assert moved(before, after, "workflows_send_buffer_stalls_total", transport="websocket") >= 1
    assert moved(before, after, "workflows_slow_reader_closes_total", transport="websocket") == 1


@pytest.fixture
def server_env() -> dict:
    return ENV


async def test_the_embedded_server_measures_its_sockets_and_its_runs(server):
    url = f"{server.url}/metrics"
    before = read_metrics(url)
    await small_load(server, lambda: assert_busy(read_metrics(url)))
    after = read_metrics(url)
    assert_server_moved(before, after)
    # Its runner is in the same process: its measures are on the same page.
    assert_runner_moved(before, after)
    await stall_one_reader(server, url)


def test_metrics_are_refused_without_the_token(server):
    request = urllib.request.Request(f"{server.url}/metrics")
    with pytest.raises(urllib.error.HTTPError) as refusal:
        urllib.request.urlopen(request, timeout=10)
    assert refusal.value.code == 403
    assert "METRICS_TOKEN" in refusal.value.read().decode()


@pytest.fixture
def services_deployment(tmp_path):
    """A server and a worker (with its metrics port) on PostgreSQL and Redis."""
    require_postgres_and_redis()
    deployment = processes.distributed(tmp_path, servers=1, workers=0, **ENV)
    try:
        port = processes.free_port()
        log = tmp_path / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--metrics-port", str(port)],
            cwd=ROOT,
            env=deployment.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deployment.workers.append(worker)
        processes.wait_for_log(log, "ready.", worker)
        yield deployment, f"http://127.0.0.1:{port}/metrics"
    finally:
        deployment.stop()


@pytest.mark.services
async def test_with_services_the_server_and_the_worker_each_measure_theirs(services_deployment):
    from tests.e2e.conftest import client_view

    deployment, worker_url = services_deployment
    server = client_view(deployment, deployment.servers[0])
    server_url = f"{server.url}/metrics"
    before = read_metrics(server_url), read_metrics(worker_url)

    def busy() -> None:
        assert_busy(read_metrics(server_url), runner=False)
        assert_busy(read_metrics(worker_url), server=False)

    await small_load(server, busy)
    after = read_metrics(server_url), read_metrics(worker_url)
    assert_server_moved(before[0], after[0])
    assert_runner_moved(before[1], after[1])
    # The server runs nothing: the worker claimed the execution.
    assert moved(before[0], after[0], "workflows_executions_claimed_total") == 0


def require_prometheus() -> None:
    """Skips (fails with REQUIRE_SERVICES=1) without Debian's prometheus and promtool."""
    if shutil.which("prometheus") and shutil.which("promtool"):
        return
    message = "needs Prometheus: apt-get install -y prometheus"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def prometheus_files(tmp_path) -> Path:
    """docs/prometheus as it would be installed: with a token file beside it."""
    require_prometheus()
    directory = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DOCS, directory)
    (directory / "workflows-metrics-token").write_text(TOKEN + "\n")
    return directory


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def test_the_prometheus_files_pass_promtool(prometheus_files):
    rules = promtool("check", "rules", str(prometheus_files / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 4 rules found" in rules.stdout
    config = promtool("check", "config", str(prometheus_files / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def scrape_of(config: Path, server, port: int) -> dict:
    """The documented configuration, its servers' job pointed at ``server``, every 1 s."""
    settings = yaml.safe_load(config.read_text())
    settings["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    [job] = [j for j in settings["scrape_configs"] if j["job_name"] == "workflow-servers"]
    job["static_configs"] = [{"targets": [server.url.removeprefix("http://")]}]
    settings["scrape_configs"] = [job]
    return settings


def query(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]


def wait_for(check, timeout: float = 30):
    """``check()``'s first true answer; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (OSError, urllib.error.URLError):
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, "Prometheus did not get there in time"
        time.sleep(0.2)


def test_a_real_prometheus_scrapes_the_server_and_evaluates_the_alerts(
    server, prometheus_files, tmp_path
):
    port = processes.free_port()
    config = prometheus_files / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_of(config, server, port)))
    log = (tmp_path / "prometheus.log").open("w")
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        up = wait_for(
            lambda: query(port, "/api/v1/query", query='up{job="workflow-servers"}')["result"]
        )
        assert up[0]["value"][1] == "1", up
        [target] = query(port, "/api/v1/targets")["activeTargets"]
        assert target["health"] == "up" and target["lastError"] == "", target
        sockets = query(port, "/api/v1/query", query="workflows_sockets_open")["result"]
        assert {s["metric"]["transport"] for s in sockets} == {"websocket", "sse"}

        def evaluated():
            groups = query(port, "/api/v1/rules")["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return rules if rules and all(r["health"] == "ok" for r in rules) else None

        names = {rule["name"] for rule in wait_for(evaluated)}
        assert names == {
            "WorkflowTerminalEventLate",
            "WorkflowWorkerGone",
            "WorkflowPushLatencyHigh",
            "WorkflowDatabaseDiskFilling",
        }
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        log.close()
