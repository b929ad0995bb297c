"""The benchmark at its quick size: it runs, and nothing is lost or duplicated."""

import json
import re
import subprocess
import sys

import pytest

from bench.processes import ROOT
from tests.services import require_postgres_and_redis

DELIVERY = re.compile(r"^delivered / expected .*?(\d+) / (\d+) \((\d+), (\d+)\)", re.MULTILINE)
# The comparison with django-eventstream: this service's column, then the peer's.
PEER_DELIVERY = re.compile(
    r"^peer delivered / expected \S+ \S+\s+" + r"\s+".join([r"(\d+) / (\d+) \((\d+), (\d+)\)"] * 2),
    re.MULTILINE,
)
TOKENS = re.compile(
    r"^  pieces received / expected; events lost, duplicated\s+(\d+) / (\d+); (\d+), (\d+)",
    re.MULTILINE,
)
PEER_RECONNECT = re.compile(
    r"^peer sent while disconnected: .*?\)\s+" + r"\s+".join([r"(\d+) / (\d+) \((\d+)\)"] * 2),
    re.MULTILINE,
)


def run_bench(mode: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", "--size", "quick", "--modes", mode, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_complete(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    delivered, expected, lost, duplicated = map(int, DELIVERY.search(result.stdout).groups())
    assert delivered == expected > 0, result.stdout
    assert (lost, duplicated) == (0, 0), result.stdout
    # The token-streaming load: every piece, every chunk event once.
    received, expected, lost, duplicated = map(int, TOKENS.search(result.stdout).groups())
    assert received == expected > 0, result.stdout
    assert (lost, duplicated) == (0, 0), result.stdout


def assert_ahead_of_the_peer(result: subprocess.CompletedProcess) -> None:
    # Beside django-eventstream, this service loses nothing across a forced
    # reconnect; the peer's figures are measured (its losses are its own).
    delivery = list(map(int, PEER_DELIVERY.search(result.stdout).groups()))
    ours, peer = delivery[:4], delivery[4:]
    assert ours[0] == ours[1] > 0 and ours[2:] == [0, 0], result.stdout
    assert peer[0] > 0, result.stdout
    reconnect = list(map(int, PEER_RECONNECT.search(result.stdout).groups()))
    ours, peer = reconnect[:3], reconnect[3:]
    assert ours[0] == ours[1] > 0, result.stdout
    assert ours[2] > 0 and peer[2] > 0, result.stdout


@pytest.mark.embedded
def test_embedded_quick_benchmark_loses_nothing():
    result = run_bench("embedded")
    assert_complete(result)
    assert_ahead_of_the_peer(result)


@pytest.mark.services
def test_distributed_quick_benchmark_loses_nothing():
    require_postgres_and_redis()
    # The comparison with django-eventstream runs once, in the embedded pass.
    assert_complete(run_bench("distributed", "--no-peer"))


@pytest.mark.embedded
def test_the_event_stream_benchmark_delivers_everything_on_both_transports():
    result = subprocess.run(
        [sys.executable, "-m", "bench.sse", "--size", "smoke", "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads(result.stdout.splitlines()[0])
    for kind in ("ws", "sse"):
        assert run["latency"][kind]["clients"] == 4 and run["latency"][kind]["incomplete"] == 0
        assert run["latency"][kind]["latency_ms"]["p50"] > 0
        assert run["memory"][kind]["connections"] == 20
    assert "| KiB per idle connection |" in result.stdout
