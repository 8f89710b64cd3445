"""Pause and resume, snapshots and fork (issue 23) through a real Jupyter server on Docker: a
variable survives a pause under gVisor (checkpoint and restore), a file survives one under runc
(whose checkpoint needs CRIU: the answer says the memory is not kept, and why), a sandbox made from
a snapshot has the original's file, a fork diverges from its origin, and another user can neither
see, use nor delete someone's snapshots."""

from __future__ import annotations

import json

import docker
import pytest

from jupyter_sandbox.backends.base import LABEL_PREFIX

from servers import TwoUsers

API = ("sandbox", "api", "sandboxes")
SNAPSHOTS = ("sandbox", "api", "snapshots")
BOB = {"Authorization": "token bob-token"}


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready):
    config = jp_server_config
    config["ServerApp"]["identity_provider_class"] = TwoUsers
    config["SandboxManager"].update(max_sandboxes_per_user=4, max_memory="4G", max_snapshot_size_per_user="64M")
    return config


async def fetch(jp_fetch, *parts, **kwargs):
    kwargs.setdefault("request_timeout", 180)
    kwargs.setdefault("raise_error", False)
    return await jp_fetch(*parts, **kwargs)


async def post(jp_fetch, *parts, headers=None, **body):
    return await fetch(jp_fetch, *parts, method="POST", body=json.dumps(body), headers=headers)


def body_of(response):
    return json.loads(response.body)


async def create(jp_fetch, **body) -> dict:
    r = await post(jp_fetch, *API, memory="256M", disk="64M", **body)
    assert r.code == 201, r.body
    return body_of(r)


async def run(jp_fetch, sandbox_id, code, headers=None) -> dict:
    """The execution's text result and errors (its NDJSON events, gathered)."""
    r = await post(jp_fetch, *API, sandbox_id, "execute", headers=headers, code=code)
    assert r.code == 200, r.body
    events = [json.loads(line) for line in r.body.decode().splitlines()]
    results = [e["text"] for e in events if e.get("type") == "result" and e.get("text")]
    errors = [e for e in events if e.get("type") == "error"]
    stdout = "".join(e["text"] for e in events if e.get("type") == "stdout")
    return {"result": results[-1] if results else None, "errors": errors, "stdout": stdout}


def container_running(sandbox_id: str) -> bool:
    client = docker.from_env()
    try:
        (container,) = client.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}.sandbox={sandbox_id}"})
        return bool(container.attrs["State"]["Running"])
    finally:
        client.close()


async def test_a_variable_survives_pause_and_resume_under_gvisor(jp_fetch, runsc_ready):
    sandbox = await create(jp_fetch, runtime="runsc")
    sid = sandbox["id"]
    assert (await run(jp_fetch, sid, "x = 41\nopen('kept.txt', 'w').write('in tmpfs')"))["errors"] == []
    # a forked child's output reaches the kernel over a Unix socket (a TCP listener would stop the checkpoint)
    child = "import multiprocessing as mp\np = mp.get_context('fork').Process(target=print, args=('from a child',))\np.start(); p.join()"
    assert "from a child" in (await run(jp_fetch, sid, child))["stdout"]

    r = await post(jp_fetch, *API, sid, "pause")
    assert r.code == 200, r.body
    paused = body_of(r)
    assert (paused["status"], paused["paused"], paused["memory_kept"], paused["memory_note"]) == (
        "paused",
        True,
        True,
        None,
    )
    assert not container_running(sid)  # its CPU and memory are free
    assert body_of(await post(jp_fetch, *API, sid, "pause"))["status"] == "paused"  # again: nothing to do

    r = await post(jp_fetch, *API, sid, "resume")
    assert r.code == 200, r.body
    resumed = body_of(r)
    assert (resumed["status"], resumed["paused"], resumed["memory_kept"]) == ("running", False, True), resumed
    assert container_running(sid)
    outcome = await run(jp_fetch, sid, "print(open('kept.txt').read())\nx + 1")
    assert outcome["errors"] == [] and outcome["result"] == "42", outcome
    assert outcome["stdout"].strip() == "in tmpfs"  # the working directory (a tmpfs) came back too

    # paused again: this host's runsc cannot checkpoint a restored sandbox before it has stopped once
    # (docs/pause.md), so this pause keeps the files, and says so; code sent resumes it by itself
    again = body_of(await post(jp_fetch, *API, sid, "pause"))
    assert again["paused"] is True and again["memory_kept"] is False and "restored" in again["memory_note"]
    outcome = await run(jp_fetch, sid, "print(open('kept.txt').read())\n'x' in globals()")
    assert outcome["stdout"].strip() == "in tmpfs" and outcome["result"] == "False", outcome
    assert body_of(await fetch(jp_fetch, *API, sid))["status"] == "running"

    # and the next pause keeps the memory again
    assert (await run(jp_fetch, sid, "y = 20"))["errors"] == []
    assert body_of(await post(jp_fetch, *API, sid, "pause"))["memory_kept"] is True
    outcome = await run(jp_fetch, sid, "y * 2")  # resumed by the code itself (resume_on_execute)
    assert outcome["result"] == "40", outcome


async def test_idle_sandboxes_are_paused_not_removed_and_code_to_them_is_refused_when_configured(docker_ready):
    """The manager's own idle loop (an in-process test server does not start it): idle_action pause."""
    import asyncio

    from jupyter_sandbox.errors import Conflict

    from conftest import make_manager

    manager = make_manager(
        "docker",
        cull_idle_timeout=3.0,
        cull_interval=1.0,
        idle_action="pause",
        resume_on_execute=False,
        reap_on_start=False,
        pool_size=0,
    )
    await manager.start()
    try:
        sid = (await manager.create("alice", spec={"memory": "256M", "disk": "64M"})).id
        await manager.execute("alice", sid, "open('f.txt', 'w').write('kept')")
        for _ in range(30):  # idle for 3 s, looked at each second: paused within seconds
            await asyncio.sleep(1)
            if manager.get("alice", sid).status == "paused":
                break
        model = manager.get("alice", sid)
        assert model.status == "paused" and "idle" in (model.status_reason or ""), model
        with pytest.raises(Conflict, match="paused"):  # resume_on_execute = False
            await manager.execute("alice", sid, "1")
        assert (await manager.pausing.resume("alice", sid)).status == "running"
        execution = await manager.execute("alice", sid, "print(open('f.txt').read())")
        assert "".join(execution.logs.stdout).strip() == "kept"
    finally:
        await manager.shutdown()


async def test_runc_pause_keeps_files_not_memory_and_says_why(jp_fetch):
    sandbox = await create(jp_fetch)
    sid = sandbox["id"]
    code = "x = 41\nimport os; os.makedirs('d', exist_ok=True); open('d/notes.txt', 'w').write('kept')"
    assert (await run(jp_fetch, sid, code))["errors"] == []

    paused = body_of(await post(jp_fetch, *API, sid, "pause"))
    assert (paused["status"], paused["paused"], paused["memory_kept"]) == ("paused", True, False), paused
    assert "CRIU" in paused["memory_note"]
    assert not container_running(sid)

    # while paused: files are refused with a clear 409, and another user does not see it at all
    r = await fetch(jp_fetch, *API, sid, "files", params={"path": "d/notes.txt"})
    assert r.code == 409 and "paused" in body_of(r)["message"], r.body
    assert (await post(jp_fetch, *API, sid, "resume", headers=BOB)).code == 404

    resumed = body_of(await post(jp_fetch, *API, sid, "resume"))
    assert (resumed["status"], resumed["memory_kept"]) == ("running", False)
    assert "variables lost" in resumed["status_reason"]
    outcome = await run(jp_fetch, sid, "print(open('d/notes.txt').read())\n'x' in globals()")
    assert outcome["stdout"].strip() == "kept" and outcome["result"] == "False", outcome


async def test_snapshots_a_new_sandbox_from_one_and_a_fork(jp_fetch):
    origin = (await create(jp_fetch, name="origin"))["id"]
    assert (await run(jp_fetch, origin, "open('data.txt', 'w').write('from the origin')"))["errors"] == []

    r = await post(jp_fetch, *API, origin, "snapshots", name="first")
    assert r.code == 201, r.body
    snapshot = body_of(r)
    assert (snapshot["name"], snapshot["owner"], snapshot["source"], snapshot["memory_kept"]) == (
        "first",
        "alice",
        origin,
        False,
    )
    assert snapshot["size"] > 0 and snapshot["spec"]["memory"] == 256 * 1024**2
    assert (await post(jp_fetch, *API, origin, "snapshots", name="first")).code == 409  # the name is taken
    assert [s["name"] for s in body_of(await fetch(jp_fetch, *SNAPSHOTS))] == ["first"]

    # a new sandbox from the snapshot: the file, and the origin's spec
    r = await post(jp_fetch, *API, snapshot="first", name="restored")
    assert r.code == 201, r.body
    restored = body_of(r)
    assert restored["spec"]["memory"] == 256 * 1024**2
    assert (await run(jp_fetch, restored["id"], "print(open('data.txt').read())"))["stdout"].strip() == (
        "from the origin"
    )

    # a fork: a running copy, then each sees only what it writes
    r = await post(jp_fetch, *API, origin, "fork", name="forked")
    assert r.code == 201, r.body
    fork = body_of(r)["id"]
    assert fork != origin
    await run(jp_fetch, origin, "open('data.txt', 'w').write('origin after the fork')")
    await run(jp_fetch, fork, "open('data.txt', 'w').write('fork after the fork')")
    read = "print(open('data.txt').read())"
    assert (await run(jp_fetch, origin, read))["stdout"].strip() == "origin after the fork"
    assert (await run(jp_fetch, fork, read))["stdout"].strip() == "fork after the fork"

    r = await fetch(jp_fetch, *SNAPSHOTS, "first", method="DELETE")
    assert r.code == 204
    assert body_of(await fetch(jp_fetch, *SNAPSHOTS)) == []
    assert (await post(jp_fetch, *API, snapshot="first")).code == 404
    for sid in (origin, restored["id"], fork):
        await fetch(jp_fetch, *API, sid, method="DELETE")


async def test_another_user_cannot_see_use_or_delete_your_snapshots(jp_fetch):
    origin = (await create(jp_fetch))["id"]
    await run(jp_fetch, origin, "open('secret.txt', 'w').write('alice only')")
    assert (await post(jp_fetch, *API, origin, "snapshots", name="mine")).code == 201

    assert body_of(await fetch(jp_fetch, *SNAPSHOTS, headers=BOB)) == []
    assert (await fetch(jp_fetch, *SNAPSHOTS, "mine", headers=BOB)).code == 404
    assert (await fetch(jp_fetch, *SNAPSHOTS, "mine", method="DELETE", headers=BOB)).code == 404
    r = await post(jp_fetch, *API, headers=BOB, snapshot="mine")
    assert r.code == 404 and "no snapshot" in body_of(r)["message"], r.body
    # nor snapshot, fork or pause alice's sandbox
    assert (await post(jp_fetch, *API, origin, "snapshots", headers=BOB, name="stolen")).code == 404
    assert (await post(jp_fetch, *API, origin, "fork", headers=BOB)).code == 404
    assert (await post(jp_fetch, *API, origin, "pause", headers=BOB)).code == 404
    # a snapshot bob takes of his own sandbox, under the same name, is his own
    bobs = body_of(await post(jp_fetch, *API, headers=BOB, memory="256M", disk="64M"))["id"]
    assert (await post(jp_fetch, *API, bobs, "snapshots", headers=BOB, name="mine")).code == 201
    assert body_of(await fetch(jp_fetch, *SNAPSHOTS, "mine"))["source"] == origin
    assert body_of(await fetch(jp_fetch, *SNAPSHOTS, "mine", headers=BOB))["source"] == bobs

    assert (await fetch(jp_fetch, *SNAPSHOTS, "mine", method="DELETE")).code == 204
    assert body_of(await fetch(jp_fetch, *SNAPSHOTS, "mine", headers=BOB))["source"] == bobs
    # bad names are a 400, past the cap a 429
    assert (await post(jp_fetch, *API, origin, "snapshots", name="../x")).code == 400
    await run(jp_fetch, origin, "open('big.bin', 'wb').write(__import__('os').urandom(40 << 20))")
    assert (await post(jp_fetch, *API, origin, "snapshots", name="big1")).code == 201
    r = await post(jp_fetch, *API, origin, "snapshots", name="big2")
    assert r.code == 429 and "64M" in body_of(r)["message"], r.body
    assert [s["name"] for s in body_of(await fetch(jp_fetch, *SNAPSHOTS))] == ["big1"]  # nothing half-kept


def test_client_and_cli_pause_resume_snapshot_fork(sandbox_server, monkeypatch):
    """The Python client and `jupyter sandbox pause|resume|snapshot|fork` against a server subprocess."""
    import os
    import subprocess
    import sys

    from jupyter_sandbox import Sandbox

    url, token = sandbox_server
    monkeypatch.delenv("JUPYTER_SANDBOX_URL", raising=False)
    where = {"server_url": url, "token": token}

    def cli(*args: str) -> str:
        env = {**os.environ, "JUPYTER_SANDBOX_URL": url, "JUPYTER_SANDBOX_TOKEN": token}
        answer = subprocess.run(
            [sys.executable, "-m", "jupyter_sandbox.cli", *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert answer.returncode == 0, answer.stderr
        return answer.stdout

    with Sandbox(memory="256M", **where) as sandbox:
        sandbox.run_code("open('a.txt', 'w').write('client')")
        model = sandbox.pause()
        assert model.paused and model.memory_kept is False and "CRIU" in (model.memory_note or "")
        assert sandbox.resume().status == "running"
        snapshot = sandbox.snapshot("client-snap")
        assert snapshot.name == "client-snap" and snapshot.source == sandbox.id
        assert [s.name for s in Sandbox.list_snapshots(**where)] == ["client-snap"]
        with Sandbox.create(snapshot="client-snap", **where) as restored:
            assert restored.run_code("open('a.txt').read()").text == "'client'"
        with sandbox.fork(keep=False) as forked:
            assert forked.id != sandbox.id and forked.run_code("open('a.txt').read()").text == "'client'"

        assert "files kept, not memory" in cli("pause", sandbox.id)
        assert "running" in cli("resume", sandbox.id)
        assert "snapshot cli-snap of" in cli("snapshot", sandbox.id, "cli-snap")
        assert "cli-snap" in cli("snapshot", "list")
        assert "deleted snapshot cli-snap" in cli("snapshot", "delete", "cli-snap")
        forked_line = cli("fork", sandbox.id, "--name", "cli-fork")
        assert forked_line.startswith("cli-fork (sbx_")
        cli_fork = forked_line.split("(")[1].split(")")[0]
        Sandbox.kill(cli_fork, **where)
    Sandbox.delete_snapshot("client-snap", **where)
    assert Sandbox.list_snapshots(**where) == []


@pytest.mark.parametrize("runtime", ["runsc", "runc"])
async def test_a_paused_sandbox_survives_a_server_restart(runtime, docker_ready, tmp_path, request):
    """Paused, then the server goes (its records kept, as after a crash or keep_sandboxes_on_stop):
    the next run takes it back paused, and its resume brings back the variable (gVisor) or the file."""
    from jupyter_sandbox.core.state import SandboxRecords

    from conftest import SESSION_SERVER_ID, make_manager

    server_id = f"{SESSION_SERVER_ID}-pause-{runtime}"
    records = SandboxRecords(str(tmp_path / "records"))
    first = make_manager("docker", server_id=server_id, reap_on_start=False, pool_size=0)
    first.records = records
    first.pausing.archives.folder = str(tmp_path / "snapshots")
    model = await first.create("alice", spec={"memory": "256M", "disk": "64M", "runtime": runtime})
    await first.execute("alice", model.id, "x = 41\nopen('f.txt', 'w').write('kept')")
    assert (await first.pausing.pause("alice", model.id)).paused
    await first.backend.close()  # the server goes; the stopped container and the records stay

    second = make_manager("docker", server_id=server_id, pool_size=0)
    second.records = records
    second.pausing.archives.folder = str(tmp_path / "snapshots")
    try:
        await second.start()
        taken = second.get("alice", model.id)
        assert (taken.status, taken.paused, taken.memory_kept) == ("paused", True, runtime == "runsc")
        assert not container_running(model.id)
        execution = await second.execute("alice", model.id, "print(open('f.txt').read())\n'x' in globals()")
        assert "".join(execution.logs.stdout).strip() == "kept"
        assert execution.text == str(runtime == "runsc")
        assert second.get("alice", model.id).status == "running"
    finally:
        await second.shutdown()


async def test_a_pause_asked_for_files_only_keeps_no_memory_even_under_gvisor(runsc_ready):
    """E2B's mode="filesystem" ({"memory": false}) reaches the pause as keep_memory=False."""
    from conftest import make_manager

    manager = make_manager("docker", reap_on_start=False, pool_size=0)
    try:
        model = await manager.create("alice", spec={"memory": "256M", "disk": "64M", "runtime": "runsc"})
        await manager.execute("alice", model.id, "x = 1\nopen('f.txt', 'w').write('kept')")
        paused = await manager.pausing.pause("alice", model.id, keep_memory=False)
        assert paused.memory_kept is False and "files only" in (paused.memory_note or "")
        execution = await manager.execute("alice", model.id, "print(open('f.txt').read())\n'x' in globals()")
        assert "".join(execution.logs.stdout).strip() == "kept" and execution.text == "False"
    finally:
        await manager.shutdown()
