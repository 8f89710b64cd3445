"""The benchmark suite still runs: benchmarks/run.py prints its table and writes valid JSON.

Benchmarks are not tests, so nothing here asserts a timing; this only keeps the suite from rotting
(it starts its own jupyter server and goes through the REST API, so an API change breaks it here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from servers import IMAGE

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.docker
def test_quick_warm_prints_a_table_and_writes_json(docker_ready, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--only",
            "warm",
            "--json",
            str(out),
            "--image",
            IMAGE,
        ],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("| Runtime | What | jupyter-sandbox (REST) | Baseline, same run |"), proc.stdout
    assert set(lines[1]) <= set("|-"), lines[1]
    assert len(lines) == 3 and lines[2].startswith("| runc | Warm `1+1` through REST |"), proc.stdout

    report = json.loads(out.read_text())
    (row,) = report["runtimes"]["runc"]
    assert row["key"] == "warm"
    assert row["value"]["n"] == row["baseline"]["n"] == 30
    assert 0 < row["value"]["p50"] <= row["value"]["p99"]
    assert 0 < row["baseline"]["p50"] <= row["baseline"]["p99"]
    assert row["ratio"] == round(row["value"]["p50"] / row["baseline"]["p50"], 2)
    assert row["peer"]["name"].startswith("llm-sandbox")  # measured, or says why not (extra not installed)
    assert report["image"]["name"] == IMAGE

    # nothing the run made is left: its servers' sandboxes, its own containers
    import docker

    client = docker.from_env()
    (labels,) = report["labels"]
    assert labels["servers"]
    filters = [f"jupyter-sandbox-bench.server={s}" for s in labels["servers"]] + [
        f"jupyter-sandbox-bench.run={labels['run']}"
    ]
    for label in filters:
        assert client.containers.list(all=True, filters={"label": label}) == [], label


@pytest.mark.docker
def test_bench_kubernetes_measures_both_backends_in_one_run(docker_ready, tmp_path):
    out = tmp_path / "k8s.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_kubernetes.py"),
            "-n",
            "1",
            "--image",
            IMAGE,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["docker"]["n"] == report["kubernetes"]["n"] == 1
    assert report["docker"]["median"] > 0 and report["kubernetes"]["median"] > 0
    assert report["ratio"] == round(report["kubernetes"]["median"] / report["docker"]["median"], 2)
    assert "| kubernetes (the test API server) |" in proc.stdout and f"{report['ratio']:.2f}" in proc.stdout
