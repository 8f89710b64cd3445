"""What a Docker sandbox must not allow, checked from inside it, on runc and on gVisor."""

from __future__ import annotations

import ast

import docker
import pytest

from jupyter_sandbox.backends.docker import DockerBackend
from jupyter_sandbox.models import SandboxSpec

from conftest import IMAGE, make_manager, require_docker
from servers import SESSION, SESSION_LABEL

OWNER = "eve"


@pytest.fixture(scope="module", params=["docker", "docker-runsc"])
async def hardened(request, docker_ready):
    require_docker("runsc" if request.param == "docker-runsc" else None)
    manager = make_manager(request.param)
    model = await manager.create(OWNER, spec={"memory": "256M", "pids": 64})
    yield manager, model
    await manager.shutdown()


async def run(hardened, code, **kwargs):
    manager, model = hardened
    return await manager.execute(OWNER, model.id, code, **kwargs)


async def test_no_network(hardened):
    code = (
        "import socket\ns = socket.socket(); s.settimeout(3)\n"
        "try:\n    s.connect(('1.1.1.1', 80)); outcome = 'connected'\n"
        "except OSError as e:\n    outcome = 'refused: ' + type(e).__name__\noutcome"
    )
    execution = await run(hardened, code)
    assert execution.text.startswith("'refused"), execution
    interfaces = await run(hardened, "import socket; sorted(n for _, n in socket.if_nameindex())")
    assert interfaces.text in ("['lo']", "[]"), interfaces.text


async def test_root_filesystem_is_read_only_and_workdir_writable(hardened):
    execution = await run(hardened, "open('/usr/evil', 'w')")
    assert execution.error.name in ("OSError", "PermissionError"), execution.error
    assert "Read-only file system" in execution.error.value or "Permission denied" in execution.error.value
    assert (await run(hardened, "open('/home/user/ok.txt','w').write('ok')")).text == "2"


async def test_not_root_and_no_capabilities(hardened):
    assert (await run(hardened, "import os; os.getuid() != 0 and os.geteuid() != 0")).text == "True"
    # none in effect, and none to take back (the container itself has SETUID, SETGID, KILL for the launcher)
    code = "[int(l.split()[1], 16) for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm'))]"
    assert (await run(hardened, code)).text == "[0, 0]"
    # PR_GET_NO_NEW_PRIVS (gVisor's /proc has no NoNewPrivs line, prctl works on both)
    assert (await run(hardened, "import ctypes; ctypes.CDLL(None).prctl(39, 0, 0, 0, 0)")).text == "1"


async def test_host_files_are_not_visible(hardened, tmp_path):
    marker = tmp_path / "host-secret.txt"
    marker.write_text("host only")
    code = (
        f"import os\n[os.path.exists({str(marker)!r}), os.path.exists('/var/run/docker.sock'), "
        "os.path.exists('/run/docker.sock'), os.path.exists('/work'), os.path.exists('/root/.bashrc')]"
    )
    assert (await run(hardened, code)).text == "[False, False, False, False, False]"
    mounts = (await run(hardened, "open('/proc/mounts').read()")).text
    assert "docker.sock" not in mounts


async def test_fork_bomb_is_stopped_by_the_pids_limit(hardened):
    code = (
        "import os, time\npids = []\nerror = None\n"
        "try:\n"
        "    for _ in range(5000):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        pids.append(pid)\n"
        "except OSError as e:\n"
        "    error = type(e).__name__\n"
        "finally:\n"
        "    for pid in pids:\n"
        "        os.kill(pid, 9); os.waitpid(pid, 0)\n"
        "(len(pids), error)"
    )
    manager, model = hardened
    execution = await run(hardened, code, timeout=120)
    if model.spec.runtime == "runsc" or manager.backend.runtime == "runsc":
        # Under gVisor the limits hold for the sandbox as a whole (the sentry's threads share
        # the host pids cgroup): the bomb ends the sandbox, by its process or memory limit,
        # and the sandbox then restarts cleanly.
        assert execution.error.name == "KernelDied" and "Restart the sandbox" in execution.error.value, execution
        await manager.restart(OWNER, model.id)
    else:
        count, error = eval(execution.text)
        assert error == "BlockingIOError", execution
        assert count < 64
    assert (await run(hardened, "'alive'")).text == "'alive'"


async def test_memory_bomb_kills_the_kernel_and_sandbox_restarts(hardened):
    manager, model = hardened
    execution = await run(hardened, "hog = []\nwhile True:\n    hog.append(bytearray(16 * 1024 * 1024))", timeout=120)
    assert execution.error is not None
    message = f"{execution.error.name}: {execution.error.value}".lower()
    assert "memory" in message or "died" in message, message
    restarted = await manager.restart(OWNER, model.id)
    assert restarted.status == "running"
    assert (await run(hardened, "1+1")).text == "2"


SYSCALLS = r"""
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def outcome(result):
    return 'refused ' + errno.errorcode[ctypes.get_errno()] if result < 0 else 'done'
print({
    'io_uring_setup': outcome(libc.syscall(425, 8, ctypes.create_string_buffer(120))),
    'ptrace': outcome(libc.ptrace(16, 1, 0, 0)),  # PTRACE_ATTACH to PID 1, of the same uid here
})
"""


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_the_seccomp_profile_on_each_runtime(docker_ready, runtime):
    """The project's profile alone (a one-shot run's container: no launcher and its filter): runc applies
    it. gVisor applies an engine's profile only when runsc runs with --oci-seccomp (with which the
    release here cannot start threads under it), and otherwise implements io_uring itself; kernels get
    the launcher's filter on both (tests/security/test_link.py)."""
    require_docker("runsc" if runtime == "runsc" else None)
    client = docker.from_env()
    spec = SandboxSpec(runtime=runtime, memory=256 * 1024**2, pids=64)
    options = DockerBackend(runtime=runtime).container_options(spec, {SESSION_LABEL: SESSION}, once=True)
    found = ast.literal_eval(client.containers.run(IMAGE, ["python", "-c", SYSCALLS], remove=True, **options).decode())
    assert found["ptrace"] == "refused EPERM"
    runtime_args = client.info()["Runtimes"][runtime].get("runtimeArgs") or []
    if runtime == "runc" or "--oci-seccomp" in runtime_args:
        assert found["io_uring_setup"] == "refused EPERM"
    else:
        assert found["io_uring_setup"] == "done", "gVisor refuses io_uring by itself now: update this test"
