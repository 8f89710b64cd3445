"""Code in a sandbox can't touch its kernel's link to the host (issue 27): the launcher, whose stdout
is the link, runs as a uid of its own, so the code can neither write frames into the link, nor stop
or trace the launcher; io_uring is denied too (runc: the project's seccomp profile; gVisor, which
ignores the engine's profile and implements io_uring itself: the launcher's filter)."""

from __future__ import annotations

import ast

import docker
from attacks import ATTACKER, assert_whole, create, guarded  # noqa: F401 (guarded is a fixture)

from jupyter_sandbox.backends.docker import DockerBackend
from jupyter_sandbox.backends.docker_containers import uid_pair

from servers import result_text

BASE = DockerBackend.sandbox_uid_base.default_value
COUNT = DockerBackend.sandbox_uid_count.default_value

ATTACK = r"""
import ctypes, errno, os, signal, struct
libc = ctypes.CDLL(None, use_errno=True)

def launcher_pid():
    # the kernel's parent, and a launcher by its command line (python -I -c <its bootstrap> start),
    # which registers the codec under the module name the launcher imports
    pid = os.getppid()
    assert b"ModuleType('jsbx_frames')" in open(f'/proc/{pid}/cmdline', 'rb').read()
    return pid

def outcome(attempt):
    try:
        attempt()
        return 'done'
    except OSError as e:
        return 'refused ' + errno.errorcode.get(e.errno, str(e.errno))

def checked(result):
    if result < 0:
        raise OSError(ctypes.get_errno(), 'failed')

def forge():
    # an "exited" event from the launcher: the server would take the kernel for dead
    event = b'{"event": "exited", "code": 0, "signal": null, "error": null, "log": "forged"}'
    with open(f'/proc/{pid}/fd/1', 'wb', buffering=0) as link:
        link.write(struct.pack('>BII', 255, 1, len(event)) + event)

def io_uring():
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 8, params)  # io_uring_setup(8, &params)
    checked(fd)
    os.close(fd)

pid = launcher_pid()
uids = lambda p: [int(x) for x in next(l for l in open(f'/proc/{p}/status') if l.startswith('Uid:')).split()[1:]]
{
    'kernel uids': uids('self'),
    'launcher uids': uids(pid),
    'write into the link': outcome(forge),
    'SIGSTOP the launcher': outcome(lambda: os.kill(pid, signal.SIGSTOP)),
    'ptrace the launcher': outcome(lambda: checked(libc.ptrace(16, pid, 0, 0))),  # PTRACE_ATTACH
    'io_uring_setup': outcome(io_uring),
}
"""


def test_sandbox_code_cannot_write_into_stop_or_trace_its_link(guarded):
    server, bystander = guarded
    sandbox = create(server)
    events = server.execute(sandbox, ATTACK, user=ATTACKER)
    text = result_text(events)
    assert text is not None, events  # (a forged "exited" in the link ends the execution)
    found = ast.literal_eval(text)
    # the sandbox's own pair of uids (DockerBackend.sandbox_uid_base)
    kernel_uid, launcher_uid = (int(ids.partition(":")[0]) for ids in uid_pair(sandbox, BASE, COUNT))
    assert found["kernel uids"] == [kernel_uid] * 4
    assert found["launcher uids"] == [launcher_uid] * 4
    assert found["write into the link"] == "refused EACCES"
    assert found["SIGSTOP the launcher"] == "refused EPERM"
    assert found["ptrace the launcher"] == "refused EPERM"
    assert found["io_uring_setup"] == "refused EPERM"
    # the link is whole: the same kernel still runs code, interrupts and restarts still work
    assert result_text(server.execute(sandbox, "pid * 0 + 6 * 7", user=ATTACKER)) == "42"
    assert_whole(server, bystander)


def test_the_sandboxs_env_reaches_its_kernel_and_no_root_exec(guarded):
    """The launcher and the file commands start as root: an LD_PRELOAD of the sandbox's own making in
    their environment would run its code there. The sandbox's env goes to its kernels only."""
    server, bystander = guarded
    sandbox = create(server, env={"LD_PRELOAD": "/home/user/hook.so", "GREETING": "hi"})
    assert result_text(server.execute(sandbox, "import os; os.environ['GREETING']", user=ATTACKER)) == "'hi'"
    container = docker.from_env().containers.get(f"jupyter-sandbox-{sandbox}")
    assert not [e for e in container.attrs["Config"]["Env"] if e.startswith(("LD_PRELOAD=", "GREETING="))]
    # file commands (root execs that drop to the sandbox's user first) work as before
    r = server.api("PUT", f"sandboxes/{sandbox}/files", params={"path": "a.txt"}, content=b"x", user=ATTACKER)
    assert r.status_code in (200, 201, 204), r.text
    listing = server.api("GET", f"sandboxes/{sandbox}/files", user=ATTACKER).json()
    assert "a.txt" in str(listing), listing
    assert_whole(server, bystander)
