"""benchmarks/bench_hub.py keeps working: a short run (3 users x 2 sandboxes, 5 s) with 0 errors, its
table printed and nothing of it left behind. No timing assertions: the figures are the benchmark's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from hub.hub_process import cmdline, pids

from servers import IMAGE

BENCH_HUB = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_hub.py"


@pytest.mark.timeout(900)
def test_a_short_run_has_no_errors_and_cleans_up(docker_ready: None, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the benchmark starts a JupyterHub whose service holds the engine: run as root (CI does)")
    out = tmp_path / "hubload.json"
    r = subprocess.run(
        [sys.executable, str(BENCH_HUB), "--users", "3", "--duration", "5", "--json", str(out), "--image", IMAGE],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-6000:]}"
    assert "| Errors (load and baseline) | 0 |" in r.stdout, r.stdout
    assert "| Latency under load | p50 " in r.stdout, r.stdout

    report = json.loads(out.read_text())
    assert report["users"] == 3
    for phase in ("baseline", "load"):
        assert report[phase]["errors"] == 0, report[phase]["first_errors"]
        assert report[phase]["executions"] > 0
    assert report["service_rss_mb"]["peak"] > 0

    # every container the run made is gone, and its Hub (config in the run's temp dir) with it
    client = docker.from_env()
    try:
        labels = [f"{k}={v}" for k, v in report["label"].items()]
        assert client.containers.list(all=True, filters={"label": labels}) == []
    finally:
        client.close()
    workdir = report["workdir"]
    assert [pid for pid in pids() if any(workdir in arg for arg in cmdline(pid))] == []
