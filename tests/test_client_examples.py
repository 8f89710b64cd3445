"""E2B's three README examples, changed in the import line and in saying what they need
(examples/requirements.txt), run as plain scripts with
nothing else started: no server, no JUPYTER_SANDBOX_URL, so the client runs an in-process
SandboxManager (Docker backend here) and removes its containers when the script ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from jupyter_sandbox.backends.base import LABEL_PREFIX

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_SANDBOX_", "JUPYTERHUB_"))}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")  # no running Jupyter server to find
    env["MPLBACKEND"] = "Agg"  # the chart example ends with plt.show() on this (headless) side
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the pipe when printed, so their timing shows
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stdout:  # timestamped as they arrive, to see the streaming
        lines.append((time.monotonic(), line))
    proc.wait(timeout=180)
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    return proc.pid, lines


def assert_no_containers_left(pid):
    import docker

    client = docker.from_env()
    server_id = f"inproc-{os.uname().nodename}-{pid}"
    left = client.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}.server={server_id}"})
    assert not left, [c.name for c in left]


def test_minimal_example(docker_ready, tmp_path):
    pid, lines = run_example("minimal.py", tmp_path)
    assert [line for _, line in lines] == ["2\n"]
    assert_no_containers_left(pid)


def test_chart_example(docker_ready, tmp_path):
    # The script decodes results[0].png and reads it back with matplotlib: exit 0 means a real PNG.
    pid, _ = run_example("charts.py", tmp_path)
    assert_no_containers_left(pid)


def test_streaming_example(docker_ready, tmp_path):
    pid, lines = run_example("streaming.py", tmp_path)
    text = "".join(line for _, line in lines)
    assert text.startswith("hello\n")
    assert "   A  B\n0  1  2\n1  3  4" in text
    assert text.rstrip().endswith("world")
    # on_stdout fired when "hello" was printed, ~3 s before the table and ~6 s before "world"
    hello_at = next(t for t, line in lines if line.startswith("hello"))
    world_at = next(t for t, line in lines if line.startswith("world"))
    assert world_at - hello_at > 4.5
    assert_no_containers_left(pid)


def test_commands_example(docker_ready, tmp_path):
    pid, lines = run_example("commands.py", tmp_path)
    assert [line for _, line in lines] == ["hello world\n", "create new.txt\n", "['hello.txt', 'new.txt']\n"]
    assert_no_containers_left(pid)
