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
