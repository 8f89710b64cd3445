"""Issue 23's parts together, through a real Jupyter server on Docker (runc): a sandbox with a
persistent volume and an egress allow-list is paused, resumed, snapshotted, forked and removed.
The volume stays out of the archives (pack's ``tar --one-file-system``), a read-only one does not
break a resume, the allow-list's proxy is stopped with its paused sandbox and started again at the
resume, a copy gets the same rules (a proxy of its own) and the same volume, and the removal of a
paused sandbox leaves no container, proxy or network behind (the volume stays)."""

from __future__ import annotations

import io
import tarfile

import docker
import pytest
from egress_servers import FETCH, proxy_hosts
from test_egress_docker import ALLOW_LIST, engine_has, gateway, hellos  # noqa: F401  (fixtures)
from test_pause import API, body_of, container_running, create, fetch, post, run
from test_volumes import VOLUMES, detach_everything

from jupyter_sandbox.backends.docker_egress import egress_name
from jupyter_sandbox.backends.volume_images import volumes_problem

from servers import TwoUsers

PERSIST = "/home/user/persist"


@pytest.fixture(scope="module")
def volume_dir(docker_ready, tmp_path_factory):
    if volumes_problem():
        pytest.skip(volumes_problem())
    root = str(tmp_path_factory.mktemp("volumes"))
    try:
        yield root
    finally:
        detach_everything(root)


@pytest.fixture
def jp_server_config(jp_server_config, docker_ready, gateway, hellos, volume_dir):  # noqa: F811
    config = jp_server_config
    config["ServerApp"]["identity_provider_class"] = TwoUsers  # "alice" owns the snapshots
    config["SandboxManager"].update(
        allow_network=True, max_sandboxes_per_user=4, max_memory="4G", max_snapshot_size_per_user="64M"
    )
    config["DockerBackend"].update(
        egress_network="bridge", egress_test_hosts=proxy_hosts(gateway, *hellos), volume_dir=volume_dir
    )
    config["SandboxVolumes"] = {**VOLUMES["SandboxVolumes"], "max_volumes_per_user": 8}  # (one folder: the module's)
    return config


def manager_of(jp_serverapp):
    return jp_serverapp.web_app.settings["sandbox_manager"]


def container_exists(sandbox_id: str) -> bool:
    return engine_has("containers", f"jupyter-sandbox-{sandbox_id}")


def proxy_running(sandbox_id: str) -> bool:
    client = docker.from_env()
    try:
        return bool(client.containers.get(egress_name(sandbox_id)).attrs["State"]["Running"])
    finally:
        client.close()


def archive_names(chunks: list[bytes]) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        return archive.getnames()


async def gather(chunks) -> list[bytes]:
    return [chunk async for chunk in chunks]


async def reaches(jp_fetch, sid: str, url: str) -> str:
    text = (await run(jp_fetch, sid, f"{FETCH}\nfetch({url!r})"))["result"]
    assert text, url
    return str(text).strip("'\"")


WRITE = f"""
import os
open('local.txt', 'w').write('in the working directory')
open('{PERSIST}/kept.txt', 'w').write('in the volume')
print('kept.txt' in os.listdir('{PERSIST}'))
"""
READ = f"print(open('local.txt').read(), '|', open('{PERSIST}/kept.txt').read())"


async def test_a_volume_stays_out_of_the_archives_and_survives_pause_read_only_too(jp_fetch, jp_serverapp):
    archives = manager_of(jp_serverapp).pausing.archives
    sid = (await create(jp_fetch, volume="work"))["id"]
    assert (await run(jp_fetch, sid, WRITE))["stdout"].strip() == "True"

    r = await post(jp_fetch, *API, sid, "snapshots", name="with-volume")
    assert r.code == 201, r.body
    names = archive_names(await gather(archives.chunks("alice", "with-volume")))
    assert "./local.txt" in names and not [n for n in names if n.startswith("./persist/")], names

    paused = body_of(await post(jp_fetch, *API, sid, "pause"))
    assert (paused["paused"], paused["memory_kept"]) == (True, False), paused
    assert not container_running(sid)
    names = archive_names(await gather(archives.paused_chunks(sid)))
    assert "./local.txt" in names and not [n for n in names if n.startswith("./persist/")], names

    resumed = body_of(await post(jp_fetch, *API, sid, "resume"))
    assert resumed["status"] == "running", resumed
    assert (await run(jp_fetch, sid, READ))["stdout"].strip() == "in the working directory | in the volume"

    # a read-only mount of the same volume: paused and resumed, its files read, still not writable
    reader = (await create(jp_fetch, volume="work", volume_read_only=True))["id"]
    assert (await run(jp_fetch, reader, "open('mine.txt', 'w').write('reader')"))["errors"] == []
    assert body_of(await post(jp_fetch, *API, reader, "pause"))["paused"] is True
    r = await post(jp_fetch, *API, reader, "resume")
    assert r.code == 200 and body_of(r)["status"] == "running", r.body
    check = f"print(open('mine.txt').read(), open('{PERSIST}/kept.txt').read())\ntry:\n    open('{PERSIST}/x', 'w')\nexcept OSError as e:\n    print(e.errno)"
    assert (await run(jp_fetch, reader, check))["stdout"].split() == ["reader", "in", "the", "volume", "30"]

    for sandbox in (sid, reader):
        assert (await fetch(jp_fetch, *API, sandbox, method="DELETE")).code == 204


async def test_an_allow_list_holds_across_pause_and_a_paused_removal_leaves_nothing(jp_fetch):
    sid = (await create(jp_fetch, network=ALLOW_LIST, volume="net"))["id"]
    assert (await reaches(jp_fetch, sid, "http://allowed.test/")).startswith("ok hello")
    await run(jp_fetch, sid, f"open('{PERSIST}/kept.txt', 'w').write('in the volume')")

    assert body_of(await post(jp_fetch, *API, sid, "pause"))["paused"] is True
    # paused: the sandbox and its proxy hold no CPU or memory; the network and both containers stay
    assert not container_running(sid) and not proxy_running(sid)
    assert engine_has("networks", egress_name(sid))

    assert body_of(await post(jp_fetch, *API, sid, "resume"))["status"] == "running"
    assert proxy_running(sid)
    assert (await reaches(jp_fetch, sid, "http://allowed.test/")).startswith("ok hello")
    assert (await reaches(jp_fetch, sid, "https://allowed.test/")).startswith("ok hello")
    assert (await reaches(jp_fetch, sid, "http://denied.test/")).startswith("refused")

    # a proxy removed while its sandbox is paused (by hand, a cleanup) is made again at the resume
    assert body_of(await post(jp_fetch, *API, sid, "pause"))["paused"] is True
    client = docker.from_env()
    try:
        client.containers.get(egress_name(sid)).remove(force=True)
    finally:
        client.close()
    assert body_of(await post(jp_fetch, *API, sid, "resume"))["status"] == "running"
    assert proxy_running(sid)
    assert (await reaches(jp_fetch, sid, "https://allowed.test/")).startswith("ok hello")
    assert (await reaches(jp_fetch, sid, "https://denied.test/")).startswith("refused")

    # removed while paused: its container, proxy and network are gone; the volume and its file stay
    assert body_of(await post(jp_fetch, *API, sid, "pause"))["paused"] is True
    assert (await fetch(jp_fetch, *API, sid, method="DELETE")).code == 204
    assert not container_exists(sid)
    assert not engine_has("containers", egress_name(sid)) and not engine_has("networks", egress_name(sid))
    volume = body_of(await fetch(jp_fetch, "sandbox", "api", "volumes", "net"))
    assert volume["sandboxes"] == [] and volume["used"] > 0
    after = (await create(jp_fetch, volume="net"))["id"]
    assert (await run(jp_fetch, after, f"print(open('{PERSIST}/kept.txt').read())"))["stdout"].strip() == (
        "in the volume"
    )
    assert (await fetch(jp_fetch, *API, after, method="DELETE")).code == 204


async def test_a_fork_and_a_sandbox_from_a_snapshot_get_the_rules_and_the_volume(jp_fetch):
    origin = (await create(jp_fetch, network=ALLOW_LIST, volume="shared"))["id"]
    await run(jp_fetch, origin, WRITE)
    r = await post(jp_fetch, *API, origin, "snapshots", name="rules")
    assert r.code == 201, r.body
    r = await post(jp_fetch, *API, origin, "fork")
    assert r.code == 201, r.body
    forked = body_of(r)
    r = await post(jp_fetch, *API, snapshot="rules")
    assert r.code == 201, r.body
    restored = body_of(r)

    for copy in (forked, restored):
        cid = copy["id"]
        assert copy["spec"]["egress"] == ALLOW_LIST and copy["spec"]["volume"] == "shared", copy
        assert proxy_running(cid) and egress_name(cid) != egress_name(origin)  # a proxy of its own
        assert (await run(jp_fetch, cid, READ))["stdout"].strip() == "in the working directory | in the volume"
        assert (await reaches(jp_fetch, cid, "https://allowed.test/")).startswith("ok hello")
        assert (await reaches(jp_fetch, cid, "https://denied.test/")).startswith("refused")
    # one volume, mounted in all three: what the fork writes there the origin reads
    await run(jp_fetch, forked["id"], f"open('{PERSIST}/from-fork.txt', 'w').write('shared')")
    assert (await run(jp_fetch, origin, f"print(open('{PERSIST}/from-fork.txt').read())"))["stdout"].strip() == (
        "shared"
    )

    for cid in (origin, forked["id"], restored["id"]):
        assert (await fetch(jp_fetch, *API, cid, method="DELETE")).code == 204
        assert not engine_has("containers", egress_name(cid)) and not engine_has("networks", egress_name(cid))


async def test_a_volume_under_gvisor_survives_pause_with_the_memory(jp_fetch, runsc_ready):
    sid = (await create(jp_fetch, runtime="runsc", volume="gvisor"))["id"]
    await run(jp_fetch, sid, f"x = 41\nopen('{PERSIST}/kept.txt', 'w').write('in the volume')")
    paused = body_of(await post(jp_fetch, *API, sid, "pause"))
    assert (paused["paused"], paused["memory_kept"]) == (True, True), paused  # a checkpoint, the mount in it
    resumed = body_of(await post(jp_fetch, *API, sid, "resume"))
    assert resumed["status"] == "running", resumed
    outcome = await run(jp_fetch, sid, f"print(open('{PERSIST}/kept.txt').read())\n'x' in globals()")
    assert outcome["stdout"].strip() == "in the volume", outcome
    assert outcome["result"] == "True", outcome
    assert (await fetch(jp_fetch, *API, sid, method="DELETE")).code == 204
