"""The metrics benchmark at its smoke size: both modes run side by side, nothing is lost."""

import json
import subprocess
import sys

import pytest

from bench.processes import ROOT


@pytest.mark.embedded
def test_the_metrics_benchmark_runs_on_and_off_and_every_socket_gets_everything():
    result = subprocess.run(
        [sys.executable, "-m", "bench.metrics", "--size", "smoke", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [run["mode"] for run in runs] == ["on", "off"]
    for run in runs:
        assert run["latency"]["sockets"] == 4 and run["latency"]["incomplete"] == 0
        assert run["latency"]["latency_ms"]["p50"] > 0
        assert run["throughput"]["incomplete"] == 0
        assert run["throughput"]["delivered_per_second"] > 0
    on, off = runs
    # On, the server was scraped and measured its pushes; off, it served nothing.
    assert set(on["scrapes"]) == {"200"} and on["pushes_measured"] > 0
    assert set(off["scrapes"]) == {"404"} and off["pushes_measured"] == 0
    assert "| p99 latency, ms |" in result.stdout
    assert "| messages delivered per second |" in result.stdout
