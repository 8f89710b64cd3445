"""A server that crashes keeps its users' sandboxes: restarted, it re-adopts the running
containers and kernels with their state, and leaves no container unaccounted for."""

from __future__ import annotations

import time

import docker
import pytest

from jupyter_sandbox.backends.base import LABEL_PREFIX

from servers import SESSION, SESSION_LABEL, JupyterServer, result_text


def containers_of(server_id: str) -> set[str]:
    found = docker.from_env().containers.list(
        all=True, filters={"label": [f"{LABEL_PREFIX}.server={server_id}", f"{SESSION_LABEL}={SESSION}"]}
    )
    return {c.labels[f"{LABEL_PREFIX}.sandbox"] for c in found if f"{LABEL_PREFIX}.sandbox" in c.labels}


def server_id(server: JupyterServer) -> str:
    line = [ln for ln in server.log().splitlines() if "jupyter-sandbox: server id " in ln][-1]
    return line.split("jupyter-sandbox: server id ")[1].split()[0].rstrip(",")


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_kill_9_then_restart_keeps_both_users_state(docker_ready, runtime, request, tmp_path):
    if runtime == "runsc":
        request.getfixturevalue("runsc_ready")
    config = {"DockerBackend": {"runtime": runtime}}
    home = dict(
        runtime_dir=tmp_path / "runtime", data_dir=tmp_path / "data", root_dir=tmp_path, users=True, config=config
    )
    first = JupyterServer(tmp_path / "first", **home).start()
    try:
        mine = {}
        for user, value in (("alice", 41), ("bob", 9)):
            r = first.api("POST", "sandboxes", json={"name": f"{user}-box"}, user=user)
            assert r.status_code == 201, r.text
            mine[user] = r.json()
            context = first.api("POST", f"sandboxes/{mine[user]['id']}/contexts", json={}, user=user).json()
            first.execute(mine[user]["id"], f"x = {value}", user=user)
            first.execute(mine[user]["id"], f"y = {value * 2}", user=user, context_id=context["id"])
            mine[user]["second_context"] = context["id"]
        crashed_id = server_id(first)
    finally:
        first.kill()  # SIGKILL: nothing is cleaned up
    assert containers_of(crashed_id) == {m["id"] for m in mine.values()}

    with JupyterServer(tmp_path / "second", **home) as second:
        assert server_id(second) == crashed_id
        for user, value in (("alice", 41), ("bob", 9)):
            deadline = time.monotonic() + 60  # the server takes them back while it already answers
            while not (listed := second.api("GET", "sandboxes", user=user).json()):
                assert time.monotonic() < deadline, second.log()
                time.sleep(0.3)
            assert [(m["id"], m["name"], m["status"]) for m in listed] == [(mine[user]["id"], f"{user}-box", "running")]
            assert result_text(second.execute(mine[user]["id"], "x + 1", user=user)) == str(value + 1)
            assert result_text(
                second.execute(mine[user]["id"], "y", user=user, context_id=mine[user]["second_context"])
            ) == str(value * 2)
            # the E2B URL still opens only its own sandbox
            assert listed[0]["e2b_url"] == mine[user]["e2b_url"].replace(first.url.rstrip("/"), second.url.rstrip("/"))
        assert containers_of(crashed_id) == {m["id"] for m in mine.values()}, "a container unaccounted for"
    assert containers_of(crashed_id) == set()  # a clean shutdown removes them


# Run in alice's sandbox: a process of its own that, a second later (once the execution has
# answered), SIGSTOPs every kernel of the sandbox (kernels run as its user; argv has "-f <file>").
STOP_MY_KERNELS = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", '''
import os, signal, time
time.sleep(1)
for pid in os.listdir("/proc"):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\\\0")
    except OSError:
        continue
    if pid.isdigit() and b"-f" in argv and b"ipykernel" in b" ".join(argv).lower():
        os.kill(int(pid), signal.SIGSTOP)
'''], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""

STOPPED = """
import os
sum(1 for pid in os.listdir("/proc") if pid.isdigit()
    and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T")
"""


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_a_sandbox_that_stops_its_kernels_never_delays_another_users_after_a_restart(
    docker_ready, runtime, request, tmp_path
):
    if runtime == "runsc":
        request.getfixturevalue("runsc_ready")
    config = {"DockerBackend": {"runtime": runtime}, "SandboxManager": {"adopt_timeout": 10.0}}
    home = dict(
        runtime_dir=tmp_path / "runtime", data_dir=tmp_path / "data", root_dir=tmp_path, users=True, config=config
    )
    first = JupyterServer(tmp_path / "first", **home).start()
    try:
        # bob's sandboxes made before and after alice's: whatever order the engine lists them in,
        # a server that took them back one by one would reach one of bob's after alice's
        bobs = [first.api("POST", "sandboxes", json={"name": "bob-1"}, user="bob").json()["id"]]
        alices = []
        for name in ("alice-1", "alice-2"):
            sandbox = first.api("POST", "sandboxes", json={"name": name}, user="alice").json()["id"]
            first.api("POST", f"sandboxes/{sandbox}/contexts", json={}, user="alice")
            alices.append(sandbox)
        bobs.append(first.api("POST", "sandboxes", json={"name": "bob-2"}, user="bob").json()["id"])
        for sandbox in bobs:
            first.execute(sandbox, "x = 9", user="bob")
        for sandbox in alices:
            first.execute(sandbox, STOP_MY_KERNELS, user="alice")
        time.sleep(3)  # the stoppers have run: every kernel of alice's is stopped
        crashed_id = server_id(first)  # every later server takes over its slot
    finally:
        first.kill()

    second = JupyterServer(tmp_path / "second", **home).start()
    try:
        restarted = time.monotonic()
        for sandbox in bobs:  # each of bob's answers within 5 s of the restart, variables kept
            while (r := second.api("GET", f"sandboxes/{sandbox}", user="bob", timeout=5)).status_code == 404:
                assert time.monotonic() - restarted < 5.0, f"bob's {sandbox} still 404 after 5 s:\n{second.log()}"
                time.sleep(0.2)
            assert r.status_code == 200 and r.json()["status"] == "running", r.text
        for sandbox in bobs:
            assert result_text(second.execute(sandbox, "x + 1", user="bob")) == "10"

        # alice's are taken back too, within the bound: stopped kernels replaced, and the sandbox says why
        for sandbox in alices:
            deadline = time.monotonic() + 60
            while (r := second.api("GET", f"sandboxes/{sandbox}", user="alice", timeout=5)).status_code == 404:
                assert time.monotonic() < deadline, second.log()
                time.sleep(0.5)
            model = r.json()
            assert len(model["contexts"]) == 2
            assert "restarted after a server restart" in (model["status_reason"] or ""), model
            for context in model["contexts"]:
                assert result_text(second.execute(sandbox, "1 + 1", user="alice", context_id=context["id"])) == "2"
            # the stopped kernels were ended, not left holding the sandbox's memory
            assert result_text(second.execute(sandbox, STOPPED, user="alice")) == "0"
        # once more, and this time the server is shut down while it waits on alice's kernels: the
        # shutdown waits for the taking back, so it leaves no container behind
        for sandbox in alices:
            second.execute(sandbox, STOP_MY_KERNELS, user="alice")
        time.sleep(3)
    finally:
        second.kill()
    third = JupyterServer(tmp_path / "third", **home).start()
    assert server_id(third) == crashed_id
    third.stop()
    assert "took back sandbox" in third.log(20000) and containers_of(crashed_id) == set(), third.log()
