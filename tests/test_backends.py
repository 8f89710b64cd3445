"""Backend choice, honesty about isolation, reaping after a crash, hardened options."""

from __future__ import annotations

import asyncio
import json

import docker
import pytest

from jupyter_sandbox.backends import make_backend
from jupyter_sandbox.backends.base import LABEL_PREFIX, confine
from jupyter_sandbox.backends.docker import DockerBackend
from jupyter_sandbox.errors import BackendUnavailable, InvalidInput, NotFound
from jupyter_sandbox.models import SandboxSpec

from conftest import IMAGE, SESSION_SERVER_ID, make_manager


def test_auto_picks_docker_when_reachable(docker_ready, caplog):
    import logging

    with caplog.at_level(logging.INFO):
        assert make_backend("auto").name == "docker"
    assert "chose docker" in caplog.text


def test_auto_falls_back_to_local_without_an_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    backend = make_backend("auto")
    assert backend.name == "local"
    assert "Not a security boundary" in backend.isolation


async def test_unreachable_engine_is_a_clear_503():
    backend = DockerBackend(docker_url="unix:///nonexistent/docker.sock")
    with pytest.raises(BackendUnavailable) as info:
        await backend.create("sbx_x", SandboxSpec(), {})
    assert info.value.status == 503
    assert "scripts/setup-docker.sh" in info.value.message and "local" in info.value.message


def test_hardened_container_options():
    options = DockerBackend().container_options(SandboxSpec(memory=256 * 1024**2, cpus=0.5, pids=64), {"a": "b"})
    assert options["network_mode"] == "none" and options["read_only"] is True
    assert options["cap_drop"] == ["ALL"] and options["security_opt"][0] == "no-new-privileges"
    # the engine's default seccomp profile without io_uring_* and ptrace (sent as JSON text)
    seccomp = json.loads(options["security_opt"][1].removeprefix("seccomp="))
    allowed = {name for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}
    assert {"read", "clone", "setresuid"} <= allowed and not {
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    } & allowed
    assert not any("ptrace" in rule["names"] and not rule["includes"].get("caps") for rule in seccomp["syscalls"])
    # root with SETUID, SETGID and KILL, for the launcher to take a uid of its own; the sandbox's env
    # reaches its kernels only (never a root exec's environment)
    assert options["user"] == "0:0" and options["cap_add"] == ["SETUID", "SETGID", "KILL"]
    assert options["environment"] == {}
    # the working directory and /tmp are tmpfs, held in memory: the limit has room for them
    assert options["mem_limit"] == options["memswap_limit"] == (256 + 512 + 128) * 1024**2
    assert options["nano_cpus"] == 500_000_000 and options["pids_limit"] == 64 and options["init"] is True
    # a one-shot run's container runs its program as the sandbox's user, with no capability
    once = DockerBackend().container_options(SandboxSpec(env={"A": "1"}), {}, once=True)
    assert once["user"] == "1000:1000" and once["cap_add"] == []
    # its env, and who it is for a uid no account in the image has ($USER and $LOGNAME, for getpass)
    assert once["environment"] == {"USER": "sandbox", "LOGNAME": "sandbox", "A": "1"}
    # nothing of the host is mounted (kernels are reached over the exec stream), the engine's socket least of all
    assert "volumes" not in options and "mounts" not in options
    assert set(options["tmpfs"]) == {"/tmp", "/home/user"}


@pytest.mark.parametrize(
    "path, expected",
    [
        ("a.txt", "/home/user/a.txt"),
        ("", "/home/user"),
        ("/home/user/d/x", "/home/user/d/x"),
        ("d/../e", "/home/user/e"),
    ],
)
def test_confine_accepts_paths_inside(path, expected):
    assert confine(path) == expected


@pytest.mark.parametrize("path", ["..", "../x", "/etc/passwd", "/home/userx", "a/../../b", "a\x00b"])
def test_confine_refuses_escapes(path):
    with pytest.raises(InvalidInput):
        confine(path)


async def test_restarted_server_reaps_its_leftover_containers(docker_ready):
    server_id = SESSION_SERVER_ID + "-crash"  # not the session managers' id: they hold live sandboxes
    crashed = make_manager("docker", server_id=server_id)
    model = await crashed.create("alice")
    # The "crashed" server never shuts down; a new one with the same server id starts.
    survivor = make_manager("docker", server_id=server_id, pool_size=0)  # never shut down: no pool to fill
    await survivor.start()
    client = docker.from_env()
    left = client.containers.list(all=True, filters={"label": [f"{LABEL_PREFIX}.sandbox={model.id}"]})
    assert left == []


async def test_other_servers_containers_are_not_reaped(docker_ready):
    mine = make_manager("docker")
    model = await mine.create("bob")
    other = make_manager("docker", server_id=SESSION_SERVER_ID + "-other", pool_size=0)  # never shut down: no pool
    await other.start()
    client = docker.from_env()
    assert len(client.containers.list(filters={"label": [f"{LABEL_PREFIX}.sandbox={model.id}"]})) == 1
    await mine.shutdown()
    assert client.containers.list(all=True, filters={"label": [f"{LABEL_PREFIX}.sandbox={model.id}"]}) == []


async def test_stats_of_a_sandbox_removed_meanwhile_is_not_found(docker_ready):
    import json

    manager = make_manager("docker")
    model = await manager.create("dave")
    real_stats, removed = manager.backend.stats, asyncio.Event()

    async def stats_racing_a_removal(sandbox_id):
        await removed.wait()
        # what docker-py does when the container goes while it reads the stats stream
        raise json.JSONDecodeError("Expecting value", "", 0)

    manager.backend.stats = stats_racing_a_removal
    pending = asyncio.ensure_future(manager.stats("dave", model.id))
    await manager.remove("dave", model.id)
    removed.set()
    with pytest.raises(NotFound):
        await pending
    manager.backend.stats = real_stats
    await manager.shutdown()


async def test_stats_from_the_cgroup_files_are_the_engines_and_count_the_working_directory(docker_manager):
    """On this host stats come from the container's cgroup files (no engine call); they must say
    what ``docker stats`` says, the tmpfs working directory counted as memory."""
    manager, backend = docker_manager, docker_manager.backend
    model = await manager.create("erin")
    try:
        await manager.write_file("erin", model.id, "big.bin", b"\0" * (64 * 1024**2))
        ours, engines = await backend.stats(model.id), await backend.engine_stats(model.id)
        assert ours["memory_limit"] == engines["memory_limit"] == backend.memory_limit(model.spec)
        assert abs(ours["memory_used"] - engines["memory_used"]) < 8 * 1024**2, (ours, engines)
        assert ours["memory_used"] > 64 * 1024**2  # the file in the tmpfs is memory
        assert ours["pids"] == engines["pids"] > 0
        # CPU: busy for a second and a half, between two readings
        await manager.stats("erin", model.id)
        execution = await manager.execute(
            "erin", model.id, "import time\nt = time.time()\nwhile time.time() - t < 1.5:\n    pass"
        )
        assert execution.error is None
        assert (await manager.stats("erin", model.id))["cpu_percent"] > 5
    finally:
        await manager.remove("erin", model.id)
    with pytest.raises(NotFound):
        await backend.stats(model.id)


async def test_executions_and_stats_make_no_engine_call(docker_manager):
    """The hot path stays off the Docker API: executing code goes over the kernel's relay, stats
    come from the cgroup files (every engine call goes through DockerBackend.engine.call)."""
    manager, backend = docker_manager, docker_manager.backend
    model = await manager.create("frank")
    calls = []
    engine_call = backend.engine.call

    async def counted(fn, **kwargs):
        calls.append(fn)
        return await engine_call(fn, **kwargs)

    backend.engine.call = counted
    try:
        for i in range(3):
            assert (await manager.execute("frank", model.id, f"{i} + 1")).text == str(i + 1)
            await manager.stats("frank", model.id)
        assert calls == []
        await manager.list_files("frank", model.id, ".")  # (counting works: files do go through the engine)
        assert calls
    finally:
        backend.engine.call = engine_call
        await manager.remove("frank", model.id)


async def test_unknown_image_is_a_400_naming_the_field(docker_ready):
    manager = make_manager("docker", allowed_images=["missing-image:nope"])
    with pytest.raises(InvalidInput) as info:
        await manager.create("carol", spec={"image": "missing-image:nope"})
    assert info.value.field == "image" and "build" in info.value.message
    assert manager.list("carol") == []
    assert IMAGE in manager.images


def test_help_all_documents_every_setting():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "jupyter_sandbox.server.app", "--help-all"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for option in (
        "--SandboxApp.backend",
        "--SandboxManager.max_memory",
        "--DockerBackend.runtime",
        "--LocalBackend.isolate_network",
        "--OneShotRunner.wheelhouse",
        "--SandboxVolumes.max_size",
        "--DockerBackend.volume_path",
    ):
        assert option in out, option


async def test_the_servers_total_is_capped_across_users():
    """max_sandboxes_total and max_memory_total count every user's sandboxes (behind a Hub: the host's)."""
    from jupyter_sandbox.errors import QuotaExceeded

    manager = make_manager("local", default_memory="256M", default_disk="256M", max_sandboxes_total=3)
    try:
        first = await manager.create("gina")
        await manager.create("hank")
        await manager.create("ivan")
        for owner in ("gina", "jill"):  # whoever asks: the server is full
            with pytest.raises(QuotaExceeded, match="all its users"):
                await manager.create(owner)
        await manager.remove("gina", first.id)
        await manager.create("jill")  # room again once one is gone
    finally:
        await manager.shutdown()
    manager = make_manager("local", default_memory="256M", default_disk="256M", max_memory_total="1G")
    try:
        await manager.create("gina")
        await manager.create("hank")
        with pytest.raises(QuotaExceeded, match="over this server's limit of 1G"):
            await manager.create("ivan")
    finally:
        await manager.shutdown()


async def test_memory_and_disk_per_user_are_capped():
    """max_memory_per_user counts memory + disk of all of a user's sandboxes: 429 beyond, others unaffected."""
    from jupyter_sandbox.errors import QuotaExceeded

    manager = make_manager("local", default_memory="256M", default_disk="256M", max_memory_per_user="1G")
    try:
        first = await manager.create("gina")
        await manager.create("gina")
        with pytest.raises(QuotaExceeded, match="per user"):
            await manager.create("gina")
        await manager.create("hank")  # another user's quota is their own
        await manager.remove("gina", first.id)
        await manager.create("gina")  # room again once one is gone
    finally:
        await manager.shutdown()
