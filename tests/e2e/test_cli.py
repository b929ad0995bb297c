"""``manage.py run --follow`` and ``manage.py watch`` against the real server."""

import json
import re
import subprocess
import sys

from bench.processes import ROOT
from tests.e2e.test_server import stored_events
from tests.factories import chain, node

STEPS = chain(
    node("greet", "log", message="hello from the terminal", level="info"),
    node("wait", "delay", seconds=0.4),
    node("shout", "transform", expression="{echo: input}"),
)
BAR = re.compile(r"^\[[#.]{30}\] +(\d+)% (\w+) +(.*)$")
NODE_LINE = re.compile(r"^  node (\w+) (\w+)(?: \((\d+\.\d\d) s\))?$")


def manage(server, *args: str) -> subprocess.CompletedProcess:
    """A management command run as a user would, against ``server``'s database and URL."""
    return subprocess.run(
        [sys.executable, "manage.py", *args, "--url", server.url],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_workflow(server, name: str, definition: dict) -> dict:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": name, "definition": definition}
    )
    assert status == 201, workflow
    return workflow


def expected_lines(server, execution_id: str) -> list[str]:
    """The stored node and log events as the terminal client must print them, in order."""
    lines = []
    for event in stored_events(server, execution_id):
        if event["type"] == "log":
            source = event["node_id"] or "engine"
            lines.append(f"  log {event['level']:<7} [{source}] {event['message']}")
        elif event["type"] == "node":
            duration = f" ({event['duration']:.2f} s)" if "duration" in event else ""
            lines.append(f"  node {event['node_id']} {event['status']}{duration}")
    return lines


def test_run_follow_prints_bar_node_lines_logs_and_result(server):
    create_workflow(server, "steps", STEPS)

    done = manage(server, "run", "steps", "--input", '{"input": "hi"}', "--follow")

    assert done.returncode == 0, done.stderr
    first, *lines = done.stdout.splitlines()
    execution_id = first.removeprefix("execution ")
    assert [line for line in lines if not BAR.match(line) and not line.startswith("result:")] == (
        expected_lines(server, execution_id)
    )
    bars = [BAR.match(line).groups() for line in lines if BAR.match(line)]
    assert bars[0] == ("0", "pending", "Waiting to run")
    assert bars[-1][:2] == ("100", "completed")
    assert [int(percent) for percent, _, _ in bars] == sorted(int(p) for p, _, _ in bars)
    assert lines[-1] == 'result: {"echo": "hi"}'
    nodes = [NODE_LINE.match(line).groups() for line in lines if NODE_LINE.match(line)]
    assert [(n, s) for n, s, _ in nodes if s != "running"] == [
        ("greet", "completed"),
        ("wait", "completed"),
        ("shout", "completed"),
    ]
    wait_duration = next(float(d) for n, s, d in nodes if (n, s) == ("wait", "completed"))
    assert 0.4 <= wait_duration < 2
    assert "  log info    [greet] hello from the terminal" in lines

    # Watching the finished execution from the start prints the same stream again.
    replay = manage(server, "watch", execution_id, "--from-start")
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.splitlines() == lines


def test_run_follow_of_a_failing_workflow_prints_the_error_and_exits_non_zero(server):
    create_workflow(
        server, "broken", chain(node("ok", "delay", seconds=0), node("boom", "fail", message="no"))
    )

    done = manage(server, "run", "broken", "--follow")

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-1] == "error: Node 'boom' failed: no"
    assert BAR.match(lines[-2]).groups()[1] == "failed"
    assert re.search(r"^  node boom failed \(\d+\.\d\d s\): no$", done.stdout, re.M)
    assert "The execution failed." in done.stderr


def test_watch_follows_a_running_execution_live_until_it_ends(server):
    workflow = create_workflow(
        server, "long", chain(node("wait", "delay", seconds=60), node("after", "log", message="x"))
    )
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
    )
    assert status == 201, execution

    # No --token: the owner's token comes from the server's database.
    watcher = subprocess.Popen(
        [sys.executable, "manage.py", "watch", execution["id"], "--url", server.url],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        snapshot = watcher.stdout.readline()  # connected: the current state
        assert BAR.match(snapshot).groups()[1] in {"pending", "running"}, snapshot
        status, _ = server.request("POST", f"/api/v1/executions/{execution['id']}/cancel")
        assert status == 202
        rest, errors = watcher.communicate(timeout=30)
    finally:
        watcher.kill()

    assert watcher.returncode == 1
    assert "The execution cancelled." in errors
    lines = rest.splitlines()
    printed = [line for line in lines if line.startswith(("  node", "  log"))]
    expected = expected_lines(server, execution["id"])
    assert printed == expected[len(expected) - len(printed) :], "every later event, in order"
    assert "  log info    [engine] Cancellation requested by demo" in printed
    assert re.search(r"^  node wait cancelled \(\d+\.\d\d s\)$", rest, re.M)
    assert "  node after skipped" in printed
    assert BAR.match(lines[-1]).groups()[1] == "cancelled"


def two_sinks(server, name: str) -> dict:
    """A workflow whose result holds its input twice: ``{"a": input, "b": input}``."""
    return create_workflow(
        server, name, {"nodes": [node("a", "delay", seconds=0), node("b", "delay", seconds=0)]}
    )


def test_run_follow_prints_the_whole_of_a_result_cut_in_its_events(server):
    two_sinks(server, "twice")
    text = "x" * 40_000  # the result: over 64 KiB of JSON (EXECUTIONS_EVENT_RESULT_LIMIT)

    done = manage(server, "run", "twice", "--input", json.dumps({"text": text}), "--follow")

    assert done.returncode == 0, done.stderr
    execution_id = done.stdout.splitlines()[0].removeprefix("execution ")
    assert stored_events(server, execution_id)[-1]["result_truncated"] is True
    assert done.stdout.splitlines()[-1] == "result: " + json.dumps(
        {"a": {"text": text}, "b": {"text": text}}
    )


def test_watch_prints_a_result_larger_than_the_clients_largest_frame(server):
    workflow = two_sinks(server, "large")
    text = "y" * 700_000  # the result: 1.4 MB, over the client's 1 MiB frame limit
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {"t": text}}
    )
    assert status == 201, execution

    done = manage(server, "watch", execution["id"], "--from-start")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert BAR.match(lines[-2]).groups()[:2] == ("100", "completed")
    assert lines[-1] == "result: " + json.dumps({"a": {"t": text}, "b": {"t": text}})


def test_watch_prints_a_log_line_larger_than_the_clients_largest_frame_cut(server):
    workflow = create_workflow(server, "chatty", chain(node("wait", "delay", seconds=60)))
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
    )
    assert status == 201, execution
    # A line of 1.5 MB, as a custom node's ctx.log() may write: over the client's 1 MiB frames.
    code = (
        "from executions import services; services.execution_log("
        f"execution_id='{execution['id']}', node_id='wait', level='info', message='z' * 1_500_000)"
    )
    logged = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert logged.returncode == 0, logged.stderr
    status, _ = server.request("POST", f"/api/v1/executions/{execution['id']}/cancel")
    assert status == 202

    done = manage(server, "watch", execution["id"], "--from-start")

    assert done.returncode == 1, done.stderr
    assert "The execution cancelled." in done.stderr
    events = stored_events(server, execution["id"])
    (line,) = [e for e in events if e["type"] == "log" and e["node_id"] == "wait"]
    assert (line["message_truncated"], line["message_size"]) == (True, 1_500_000)
    assert f"  log info    [wait] {'z' * 8192}…" in done.stdout.splitlines()


def test_watch_follows_several_executions_on_one_socket(server):
    workflow = create_workflow(server, "steps", STEPS)
    ids = []
    for n in range(3):
        status, execution = server.request(
            "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {"n": n}}
        )
        assert status == 201, execution
        ids.append(execution["id"])

    done = manage(server, "watch", *ids, "--from-start")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for execution_id in ids:
        prefix = f"[{execution_id[:8]}] "
        mine = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
        printed = [line for line in mine if line.startswith(("node", "log"))]
        expected = [line.lstrip() for line in expected_lines(server, execution_id)]
        assert printed == expected, "each execution's events, once and in order"
        assert BAR.match(mine[-2]).groups()[1] == "completed"
        assert mine[-1].startswith("result: {")


def test_watch_feed_prints_each_new_execution_and_its_changes(server):
    workflow = create_workflow(server, "fed", STEPS)
    watcher = subprocess.Popen(
        [
            *(sys.executable, "manage.py", "watch", "--feed", "--url", server.url),
            *("--token", server.token, "--status", "completed"),
        ],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status, execution = server.request(
            "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
        )
        assert status == 201, execution
        line = watcher.stdout.readline()  # only a completed one passes the filter
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
    assert line.startswith(f"[{execution['id'][:8]}] completed 100% fed: Completed"), line
