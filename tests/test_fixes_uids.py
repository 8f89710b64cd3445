"""Each sandbox runs as host uids of its own, from a range no host account has (on a root engine
without user-namespace remapping, a container's uids are the host's: with the uid 1000 every sandbox
had, the host account of uid 1000 could read every sandbox's files through /proc/<pid>/root)."""

from __future__ import annotations

import os
import pwd

import docker
import pytest

from jupyter_sandbox.backends.docker import DockerBackend
from jupyter_sandbox.backends.docker_containers import uid_pair
from jupyter_sandbox.errors import BackendUnavailable

from conftest import make_manager

BASE = DockerBackend.sandbox_uid_base.default_value
COUNT = DockerBackend.sandbox_uid_count.default_value


def test_a_sandbox_gets_its_own_pair_from_the_range():
    kernel, launcher = uid_pair("sbx_0123456789ab", BASE, COUNT)
    assert uid_pair("sbx_0123456789ab", BASE, COUNT) == (kernel, launcher)  # the same after a server restart
    uid, _, gid = kernel.partition(":")
    assert uid == gid and launcher == f"{int(uid) + 1}:{int(uid) + 1}"
    assert BASE <= int(uid) < BASE + 2 * COUNT and (int(uid) - BASE) % 2 == 0
    pairs = {uid_pair(f"sbx_{n:012x}", BASE, COUNT) for n in range(200)}
    assert len(pairs) > 190  # chosen by id: two sandboxes rarely share one
    assert not [p.pw_name for p in pwd.getpwall() if BASE <= p.pw_uid < BASE + 2 * COUNT]  # no account here has one


def test_the_range_is_checked():
    with pytest.raises(BackendUnavailable, match="sandbox_uid_base"):
        uid_pair("sbx_x", 1000, COUNT)
    with pytest.raises(BackendUnavailable, match="sandbox_uid_base"):
        uid_pair("sbx_x", 2**31 - 4, COUNT)


def test_without_a_range_the_configured_users_stand():
    backend = DockerBackend(sandbox_uid_base=0)
    assert backend.containers.ids("sbx_0123456789ab") == ("1000:1000", "1001:1001")
    assert DockerBackend().containers.ids("sbx_0123456789ab") == uid_pair("sbx_0123456789ab", BASE, COUNT)


def host_uids_of(container_id: str) -> dict[int, tuple[int, bytes]]:
    """The host uid of each process in the container's cgroup, with its command line."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cgroup") as cgroup:
                if container_id not in cgroup.read():
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                found[int(pid)] = (os.stat(f"/proc/{pid}").st_uid, cmdline.read()[:60])
        except OSError:  # gone meanwhile
            pass
    return found


@pytest.mark.parametrize("backend_name", ["docker", "docker-runsc"])
async def test_kernels_and_files_run_as_the_sandboxs_own_uids(backend_name, docker_ready, runsc_ready):
    manager = make_manager(backend_name)
    try:
        a, b = [await manager.create("alice", name) for name in ("uid-a", "uid-b")]
        for sandbox in (a, b):
            kernel_uid, launcher_uid = (int(ids.partition(":")[0]) for ids in uid_pair(sandbox.id, BASE, COUNT))
            await manager.write_file("alice", sandbox.id, "mine.txt", b"hello")
            execution = await manager.execute(
                "alice", sandbox.id, "import os; print(os.getuid(), os.getgid(), os.stat('mine.txt').st_uid)"
            )
            assert execution.logs.stdout == [f"{kernel_uid} {kernel_uid} {kernel_uid}\n"], execution
            assert await manager.read_file("alice", sandbox.id, "mine.txt") == b"hello"
            assert "mine.txt" in [entry["name"] for entry in await manager.list_files("alice", sandbox.id, "")]
            if backend_name == "docker":  # runc: the container's uids are the host's
                (container,) = docker.from_env().containers.list(filters={"name": f"jupyter-sandbox-{sandbox.id}"})
                uids = {uid for uid, _ in host_uids_of(container.id).values()}
                # its own init and `sleep` run as root; the launcher and the kernel as its own pair
                assert uids == {0, kernel_uid, launcher_uid}, host_uids_of(container.id)
        assert uid_pair(a.id, BASE, COUNT) != uid_pair(b.id, BASE, COUNT)
    finally:
        await manager.shutdown()
