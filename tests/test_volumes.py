"""Persistent volumes (issue 23), through real servers on the real Docker engine: a volume's
size limit holds (ENOSPC inside, the host's free disk unmoved), its files outlive kill -9 of the
server, a read-only mount refuses writes (EROFS), and no user sees another's volume."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess

import pytest

from jupyter_sandbox.backends.volume_images import VolumeImages, volumes_problem
from jupyter_sandbox.errors import BackendUnavailable
from jupyter_sandbox.models import SandboxSpec

from conftest import make_manager
from servers import JupyterServer

MiB = 1024**2
VOLUMES = {"SandboxVolumes": {"default_size": "32M", "max_size": "128M", "max_volumes_per_user": 3}}


def volume_root(server: JupyterServer) -> str:
    return str(server.data_dir / "jupyter_sandbox" / "volumes")


def detach_everything(root: str) -> None:
    """No loop device is left attached by a test (mounts outlive a killed server)."""
    if os.path.isdir(root):
        VolumeImages(root).detach_all(only_here=False)


@pytest.fixture(scope="module")
def server(docker_ready, tmp_path_factory):
    if volumes_problem():
        pytest.skip(volumes_problem())
    home = tmp_path_factory.mktemp("volumes")
    with JupyterServer(home, users=True, config=VOLUMES) as running:
        try:
            yield running
        finally:
            running.stop()
            detach_everything(volume_root(running))


def run(server: JupyterServer, sandbox: str, code: str, user: str = "alice") -> str:
    events = server.execute(sandbox, code, user=user)
    errors = [e for e in events if e["type"] == "error"]
    assert not errors, errors
    return "".join(e["text"] for e in events if e["type"] == "stdout")


def new_sandbox(server: JupyterServer, user: str = "alice", **spec: object) -> str:
    r = server.api("POST", "sandboxes", json=spec, user=user)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def remove(server: JupyterServer, sandbox: str, user: str = "alice") -> None:
    assert server.api("DELETE", f"sandboxes/{sandbox}", user=user).status_code == 204


WRITE_UNTIL_FULL = """
import errno, os
written, code = 0, None
with open('/home/user/persist/big', 'wb') as f:
    try:
        for _ in range({chunks}):
            f.write(b'x' * (1 << 20)); f.flush(); os.fsync(f.fileno()); written += 1 << 20
    except OSError as e:
        code = errno.errorcode[e.errno]
print(code, written)
"""


def test_a_write_past_the_limit_is_enospc_and_the_host_disk_stays(server):
    r = server.api("POST", "volumes", json={"name": "small", "size": "64M"}, user="alice")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["size"] == 64 * MiB and created["used"] < MiB and created["mount_path"] == "/home/user/persist"
    sandbox = new_sandbox(server, volume="small")
    try:
        free_before = shutil.disk_usage(volume_root(server)).free
        code, written = run(server, sandbox, WRITE_UNTIL_FULL.format(chunks=128)).split()
        free_after = shutil.disk_usage(volume_root(server)).free
        assert code == "ENOSPC"
        assert 48 * MiB < int(written) <= 64 * MiB  # it filled the volume (less ext4's own metadata), no more
        # the image was preallocated: 128 MiB asked for, not a byte more of the host's disk taken (a sparse
        # image would have taken what was written, 48 MiB or more; the margin is for what else runs here)
        assert abs(free_before - free_after) < 16 * MiB, (free_before, free_after)
        usage = server.api("GET", "volumes/small", user="alice").json()
        assert usage["used"] > 48 * MiB and usage["capacity"] <= 64 * MiB and usage["sandboxes"] == [sandbox]
        # removing the file gives the room back; the sandbox's user owns the volume's root
        assert (
            run(
                server,
                sandbox,
                "import os; os.remove('/home/user/persist/big'); print(os.getuid() == os.stat('/home/user/persist').st_uid)",
            )
            == "True\n"
        )
    finally:
        remove(server, sandbox)


def test_a_read_only_mount_refuses_writes_and_reads(server):
    writer = new_sandbox(server, volume="ro-test")  # made on first use, at the default size
    try:
        run(server, writer, "open('/home/user/persist/notes.txt', 'w').write('kept')")
    finally:
        remove(server, writer)
    reader = new_sandbox(server, volume="ro-test", volume_read_only=True)
    try:
        code = """
import errno
print(open('/home/user/persist/notes.txt').read())
try:
    open('/home/user/persist/other.txt', 'w')
except OSError as e:
    print(errno.errorcode[e.errno])
"""
        assert run(server, reader, code).split() == ["kept", "EROFS"]
        assert server.api("GET", f"sandboxes/{reader}", user="alice").json()["spec"]["volume_read_only"] is True
    finally:
        remove(server, reader)
    volume = server.api("GET", "volumes/ro-test", user="alice").json()
    assert volume["size"] == 32 * MiB and volume["sandboxes"] == []


def test_nobody_sees_another_users_volume(server):
    assert server.api("POST", "volumes", json={"name": "private"}, user="alice").status_code == 201
    alice = new_sandbox(server, volume="private")
    try:
        run(server, alice, "open('/home/user/persist/secret.txt', 'w').write('alice only')")
        names = [v["name"] for v in server.api("GET", "volumes", user="bob").json()]
        assert "private" not in names
        assert server.api("GET", "volumes/private", user="bob").status_code == 404
        alices = server.api("GET", "volumes/private", user="alice").json()
        assert server.api("GET", f"volumes/{alices['id']}", user="bob").status_code == 404
        assert server.api("DELETE", "volumes/private", user="bob").status_code == 404
        # bob's "private" is his own, empty volume; alice's is in no mount of his sandbox
        bob = new_sandbox(server, user="bob", volume="private")
        try:
            listing = run(server, bob, "import os; print(sorted(os.listdir('/home/user/persist')))", user="bob")
            assert "secret.txt" not in listing
            mounts = run(server, bob, "print(open('/proc/self/mounts').read())", user="bob")
            assert alices["id"] not in mounts
            assert [v["owner"] for v in server.api("GET", "volumes", user="bob").json()] == ["bob"]
        finally:
            remove(server, bob, user="bob")
        # a volume in use is not removed; once its sandbox is gone it is, and its loop device with it
        r = server.api("DELETE", "volumes/private", user="alice")
        assert r.status_code == 409 and alice in r.json()["message"]
    finally:
        remove(server, alice)
    image = os.path.join(volume_root(server), alices["id"], "image.ext4")
    assert os.path.exists(image)
    assert server.api("DELETE", "volumes/private", user="alice").status_code == 204
    assert not os.path.exists(image)
    assert server.api("GET", "volumes/private", user="alice").status_code == 404


def test_bad_volume_requests_are_4xx(server):
    for body, status in [
        ({"name": "../x"}, 400),
        ({"name": "big", "size": "1G"}, 400),  # above max_size
        ({"name": "tiny", "size": "1M"}, 400),
        ({"size": "32M"}, 400),
        ({"name": "ok", "size": "lots"}, 400),
    ]:
        r = server.api("POST", "volumes", json=body, user="carol")
        assert r.status_code == status, (body, r.text)
        assert r.json()["message"]
    r = server.api("POST", "sandboxes", json={"volume": "a/b"}, user="carol")
    assert r.status_code == 400 and "volume" in r.json()["message"]
    for n in range(3):
        assert server.api("POST", "volumes", json={"name": f"v{n}", "size": "16M"}, user="carol").status_code == 201
    assert server.api("POST", "volumes", json={"name": "v0", "size": "16M"}, user="carol").status_code == 409
    assert server.api("POST", "volumes", json={"name": "v3", "size": "16M"}, user="carol").status_code == 429
    for n in range(3):
        assert server.api("DELETE", f"volumes/v{n}", user="carol").status_code == 204


def test_files_in_a_volume_survive_kill_9_of_the_server(docker_ready, tmp_path):
    if volumes_problem():
        pytest.skip(volumes_problem())
    first = JupyterServer(tmp_path, config=VOLUMES).start()
    root = volume_root(first)
    second = None
    try:
        sandbox = new_sandbox(first, volume="work")
        run(first, sandbox, "open('/home/user/persist/result.json', 'w').write('{\"answer\": 42}')")
        first.kill()  # SIGKILL: no cleanup at all
        second = JupyterServer(tmp_path, config=VOLUMES).start()  # same state folder
        fresh = new_sandbox(second, volume="work")
        assert json.loads(run(second, fresh, "print(open('/home/user/persist/result.json').read())")) == {"answer": 42}
        # one image is never attached twice (two ext4 mounts of it would corrupt it)
        [volume] = second.api("GET", "volumes").json()
        image = os.path.join(root, volume["id"], "image.ext4")
        attached = subprocess.run(["losetup", "-j", image], capture_output=True, text=True, check=True).stdout
        assert len(attached.splitlines()) == 1, attached
    finally:
        first.kill()
        if second is not None:
            second.stop()
        detach_everything(root)


async def test_the_local_backend_has_no_volumes():
    manager = make_manager("local")
    try:
        with pytest.raises(BackendUnavailable, match="no persistent volumes"):
            await manager.volumes.create("alice", "data")
        with pytest.raises(BackendUnavailable, match="no persistent volumes"):
            await manager.create("alice", spec={"volume": "data"})
        assert await manager.volumes.list("alice") == []
    finally:
        await manager.shutdown()


def test_a_spec_names_its_volume():
    assert SandboxSpec.from_dict({"volume": "data", "volume_read_only": True}).volume == "data"
    assert SandboxSpec.from_dict({"volume": ""}).volume == ""
    assert SandboxSpec.from_dict({}).volume is None
    assert errno.EROFS and errno.ENOSPC  # the codes the tests above look for


def test_e2b_volumes_api_through_the_unmodified_sdk(server, monkeypatch):
    """E2B's SDK: Volume.create/list/get_info/destroy, and a sandbox with volume_mounts at the volume path."""
    from e2b import Sandbox as E2BSandbox
    from e2b import Volume

    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
    monkeypatch.setenv("E2B_API_KEY", server.token)  # alice's
    volume = Volume.create("from-e2b")
    assert volume.volume_id.startswith("vol_") and volume.name == "from-e2b"
    assert "from-e2b" in [v.name for v in Volume.list()]
    assert Volume.get_info(volume.volume_id).name == "from-e2b"
    sbx = E2BSandbox.create(volume_mounts={"/home/user/persist": volume})
    try:
        sbx.files.write("/home/user/persist/hello.txt", "from e2b")
        assert sbx.commands.run("cat /home/user/persist/hello.txt").stdout == "from e2b"
    finally:
        sbx.kill()
    with pytest.raises(Exception, match="mounts a volume at /home/user/persist"):
        E2BSandbox.create(volume_mounts={"/data": volume})
    # alice's volume is hers alone
    assert server.api("GET", f"volumes/{volume.volume_id}", user="bob").status_code == 404
    assert Volume.destroy(volume.volume_id) is True
    assert "from-e2b" not in [v.name for v in Volume.list()]


def test_cli_and_client_list_make_use_and_remove_volumes(server):
    """`jupyter sandbox volumes` and the client's Volume/Sandbox(volume=...) against the server (alice's token)."""
    import sys

    from jupyter_sandbox.client import Sandbox, Volume

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jupyter_sandbox.cli", "volumes", *args]
        return subprocess.run([*command, "--url", server.url, "--token", server.token], capture_output=True, text=True)

    made = cli("create", "cli-vol", "--size", "16M")
    assert made.returncode == 0 and "made cli-vol: 16 MiB" in made.stdout, made.stderr
    listed = cli()
    assert listed.returncode == 0 and "cli-vol" in listed.stdout and " used" in listed.stdout, listed.stderr
    [entry] = [v for v in json.loads(cli("--json").stdout) if v["name"] == "cli-vol"]
    assert entry["owner"] == "alice" and entry["size"] == 16 * MiB

    options = {"server_url": server.url, "token": server.token}
    assert Volume.get("cli-vol", **options).size == 16 * MiB
    with Sandbox(volume="cli-vol", **options) as sandbox:
        sandbox.run_code("open('/home/user/persist/a.txt', 'w').write('x' * 100_000)")
        assert [v.sandboxes for v in Volume.list(**options) if v.name == "cli-vol"] == [[sandbox.id]]
        busy = cli("remove", "cli-vol")
        assert busy.returncode == 1 and "409" in busy.stderr and sandbox.id in busy.stderr
    assert "KiB of" in Volume.get("cli-vol", **options).usage
    removed = cli("remove", "cli-vol")
    assert removed.returncode == 0 and "removed cli-vol" in removed.stdout, removed.stderr
    assert "cli-vol" not in [v.name for v in Volume.list(**options)]
    assert cli("remove", "cli-vol").returncode == 1  # 404 now: said on stderr
    assert cli("frobnicate").returncode == 2


def test_the_limit_holds_under_gvisor_too(server, runsc_ready):
    sandbox = new_sandbox(server, volume="gvisor", runtime="runsc")
    try:
        code, written = run(server, sandbox, WRITE_UNTIL_FULL.format(chunks=64)).split()
        assert code == "ENOSPC" and 16 * MiB < int(written) <= 32 * MiB
    finally:
        remove(server, sandbox)
    assert server.api("DELETE", "volumes/gvisor", user="alice").status_code == 204
