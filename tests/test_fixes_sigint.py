"""A server stopped by SIGINT without a TTY removes its sandboxes, as on SIGTERM (JupyterHub stops
single-user servers with SIGINT, and their stdin is no TTY)."""

from __future__ import annotations

import signal
import subprocess

import docker

from jupyter_sandbox.backends.base import LABEL_PREFIX

from servers import SESSION, SESSION_LABEL, JupyterServer


def containers_of(server: JupyterServer) -> list:
    (line,) = [ln for ln in server.log().splitlines() if "jupyter-sandbox: server id " in ln][-1:]
    server_id = line.split("jupyter-sandbox: server id ")[1].split()[0].rstrip(",")
    wanted = [f"{LABEL_PREFIX}.server={server_id}", f"{SESSION_LABEL}={SESSION}"]
    return docker.from_env().containers.list(all=True, sparse=True, filters={"label": wanted})


def test_sigint_without_a_tty_removes_the_sandboxes(docker_ready, tmp_path):
    server = JupyterServer(tmp_path).start()  # stdin is /dev/null, as under JupyterHub's spawner
    try:
        r = server.api("POST", "sandboxes", json={"name": "stopped-by-sigint"})
        assert r.status_code == 201, r.text
        assert containers_of(server)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not exit within 30 s of SIGINT:\n{server.log()}") from None
        assert containers_of(server) == [], server.log()
        assert "removing 1 sandboxes on shutdown" in server.log()
    finally:
        server.kill()
        for container in containers_of(server):  # left by a failed run: removed, never kept
            container.remove(force=True)
