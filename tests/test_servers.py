"""Several Jupyter servers of one user on one host, on one Docker engine.

Both servers below share the runtime dir, the data dir (where the identity slots live), the
root dir and the base URL: everything Jupyter could tell them apart by. Starting, stopping or
SIGKILLing one never touches the other's sandboxes; one that restarts after SIGKILL deals with
its own leftovers.
"""

from __future__ import annotations

import os
import time

import docker
import pytest

from jupyter_sandbox.backends.base import LABEL_PREFIX
from jupyter_sandbox.core.identity import ServerIdentity, list_slots, private_dir
from jupyter_sandbox.errors import StateDirError

from servers import SESSION, SESSION_LABEL, JupyterServer, result_text


def containers_of_server(server_id: str, sandboxes: bool = False) -> list:
    """The server's containers; with ``sandboxes`` only its sandboxes' (not its one-shot pool's)."""
    client = docker.from_env()
    wanted = [f"{LABEL_PREFIX}.server={server_id}", f"{SESSION_LABEL}={SESSION}"]
    if sandboxes:
        wanted.append(f"{LABEL_PREFIX}.sandbox")
    # sparse: no inspect per container, which fails when a reaper removes one between list and inspect
    return client.containers.list(all=True, sparse=True, filters={"label": wanted})


def sandboxes_of_server(server_id: str) -> list:
    return containers_of_server(server_id, sandboxes=True)


def gone(containers: list, timeout: float = 60) -> bool:
    """Whether these containers are all removed within ``timeout`` (a starting server reaps its
    leftovers while it already answers requests, and starts containers of its own meanwhile)."""
    ids = {c.id for c in containers}
    deadline = time.monotonic() + timeout
    while ids & {c.id for c in docker.from_env().containers.list(all=True, sparse=True)}:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def server_id(server: JupyterServer) -> str:
    (line,) = [ln for ln in server.log().splitlines() if "jupyter-sandbox: server id " in ln][-1:]
    return line.split("jupyter-sandbox: server id ")[1].split()[0].rstrip(",")


def create(server: JupyterServer, name: str) -> dict:
    r = server.api("POST", "sandboxes", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


def test_two_servers_of_one_user_never_touch_each_others_sandboxes(docker_ready, tmp_path):
    # adopt_on_start off: a restarted server removes its leftovers instead of taking them back
    # (taking back is the default; tests/security/test_crash.py shows it)
    shared = dict(
        runtime_dir=tmp_path / "runtime",
        data_dir=tmp_path / "data",
        root_dir=tmp_path,
        config={"SandboxManager": {"adopt_on_start": False}},
    )
    a = JupyterServer(tmp_path / "a", **shared).start()
    b = JupyterServer(tmp_path / "b", **shared)
    try:
        b.start()
        id_a, id_b = server_id(a), server_id(b)
        assert id_a != id_b
        create(a, "mine-a")
        assert result_text(a.execute("mine-a", "x = 41\nx")) == "41"
        create(b, "mine-b")

        # B stops cleanly (removing its own sandboxes) and starts again: A's sandbox is untouched.
        b.stop()
        assert containers_of_server(id_b) == []  # its sandbox and its one-shot pool
        b = JupyterServer(tmp_path / "b", **shared).start()
        create(b, "mine-b")
        assert result_text(a.execute("mine-a", "x + 1")) == "42"

        # A crashes: its container stays. A restarts, knows the slot as its own, removes its leftover.
        a.kill()
        assert len(sandboxes_of_server(id_a)) == 1
        leftovers_a = containers_of_server(id_a)  # with its one-shot pool's
        id_b = server_id(b)
        a = JupyterServer(tmp_path / "a", **shared).start()
        assert server_id(a) == id_a
        assert "taken over from this server's earlier run" in a.log()
        assert gone(leftovers_a)
        assert [m["name"] for m in b.api("GET", "sandboxes").json()] == ["mine-b"]
        assert result_text(b.execute("mine-b", "'b still answers'")) == "'b still answers'"
        assert len(sandboxes_of_server(id_b)) == 1

        # B crashes while A runs: A, already up, never reaps B's container.
        b.kill()
        leftovers_b = containers_of_server(id_b)
        create(a, "again-a")
        assert len(sandboxes_of_server(id_b)) == 1 and gone(leftovers_b, timeout=0) is False
        slots = {s.server_id: s.alive for s in list_slots(str(tmp_path / "data" / "jupyter_sandbox"))}
        assert slots == {id_a: True, id_b: False}
        b = JupyterServer(tmp_path / "b", **shared).start()
        assert server_id(b) == id_b and gone(leftovers_b)
    finally:
        a.stop()
        b.stop()
    assert containers_of_server(id_a) == [] and containers_of_server(id_b) == []


def test_unit_a_slot_is_taken_over_only_when_its_server_is_gone(tmp_path):
    state = str(tmp_path / "state")
    first = ServerIdentity.claim(state, {"root_dir": "/r", "base_url": "/"})
    # a live server's slot is never taken, even by a server started the same way
    second = ServerIdentity.claim(state, {"root_dir": "/r", "base_url": "/"})
    assert second.server_id != first.server_id and second.previous == {}
    first.release()  # as if it died: the lock is free, the slot stays
    third = ServerIdentity.claim(state, {"root_dir": "/r", "base_url": "/"})
    assert third.server_id == first.server_id and third.previous["pid"]
    # another configuration does not take it over
    third.release()
    other = ServerIdentity.claim(state, {"root_dir": "/elsewhere", "base_url": "/"})
    assert other.server_id not in (first.server_id, second.server_id)
    assert {s.server_id: s.alive for s in list_slots(state)} == {
        first.server_id: False,
        second.server_id: True,
        other.server_id: True,
    }
    other.release(forget=True)
    assert other.server_id not in {s.server_id for s in list_slots(state)}


def test_unit_the_state_dir_must_be_private_and_ours(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(StateDirError, match="symbolic link"):
        private_dir(str(tmp_path / "link"))
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    assert private_dir(str(loose)) == str(loose) and (loose.stat().st_mode & 0o777) == 0o700
    if os.geteuid() != 0:
        return  # making a folder someone else owns needs root (CI runs as root)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)  # nobody: the tests run as root (CI), which may chown
    with pytest.raises(StateDirError, match="belongs to uid 65534"):
        private_dir(str(foreign))
