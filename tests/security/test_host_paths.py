"""Nothing the server reads, follows or trusts is a path a sandbox can write; nothing a sandbox
does puts more than a little on the host's disk."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import docker
from attacks import ATTACKER, assert_whole, create, guarded  # noqa: F401 (guarded is a fixture)


def kernel_died_text(events: list[dict]) -> str:
    return " ".join(e.get("value", "") for e in events if e.get("type") == "error")


def attack_log(kind: str, target: str) -> str:
    """The reported attack: replace the kernel's log file, then die, so the server reads it. (The
    log is the launcher's, next to the kernel's ipc folder, and the launcher has a uid of its own:
    the replacing is refused now; the kernel dies all the same.)"""
    make = f"os.symlink({target!r}, l)" if kind == "symlink" else "os.mkfifo(l)"
    return (
        "import os, sys\n"
        "c = [a for a in sys.argv if a.endswith('.json')][0]\n"
        "l = os.path.join(os.path.dirname(os.path.dirname(c)), os.path.basename(c)[:-5] + '.log')\n"
        f"try:\n    os.unlink(l)\n    {make}\nexcept OSError:\n    pass\nos._exit(3)"
    )


def test_a_symlinked_kernel_log_reveals_no_host_file(guarded):
    server, bystander = guarded
    marker = "host-secret-" + secrets.token_hex(8)
    secret = Path("/root") / f"jsbx-{secrets.token_hex(4)}.txt"
    secret.write_text(marker)
    try:
        sandbox = create(server)
        events = server.execute(sandbox, attack_log("symlink", str(secret)), user=ATTACKER)
        said = kernel_died_text(events)
        assert "exit code 3" in said or "died" in said.lower(), events
        assert marker not in str(events)
        # the context comes back: the next execution gets a fresh kernel after a restart
        r = server.api("POST", f"sandboxes/{sandbox}/restart", user=ATTACKER)
        assert r.status_code == 200, r.text
        assert marker not in server.api("GET", f"sandboxes/{sandbox}", user=ATTACKER).text
    finally:
        secret.unlink()
    assert_whole(server, bystander)


def test_a_fifo_kernel_log_does_not_freeze_the_server(guarded):
    server, bystander = guarded
    sandbox = create(server)
    events = server.execute(sandbox, attack_log("fifo", ""), user=ATTACKER)
    assert kernel_died_text(events), events
    for _ in range(3):  # and again on every later check
        assert_whole(server, bystander)


def test_no_host_path_is_mounted_and_the_disk_fill_stays_in_the_sandbox(guarded):
    server, bystander = guarded
    sandbox = create(server, disk="256M")
    container = docker.from_env().containers.get(f"jupyter-sandbox-{sandbox}")
    assert [m for m in container.attrs["Mounts"] if m["Type"] != "tmpfs"] == [], container.attrs["Mounts"]
    assert not container.attrs["HostConfig"].get("Binds")
    free_before = shutil.disk_usage("/").free
    # the reported fill went through the kernel-socket folder; no such folder exists now
    code = (
        "import os, errno\n"
        "reached = []\n"
        "for d in ['/run/sandbox-kernel', '/home/user', '/tmp']:\n"
        "    try:\n"
        "        with open(os.path.join(d, 'fill'), 'wb') as f:\n"
        "            for _ in range(3072):\n"
        "                f.write(b'\\0' * 1024 * 1024)\n"
        "        reached.append((d, 'wrote 3G'))\n"
        "    except OSError as e:\n"
        "        reached.append((d, errno.errorcode[e.errno]))\n"
        "reached"
    )
    events = server.execute(sandbox, code, user=ATTACKER)
    text = next(e["text"] for e in events if e.get("type") == "result")
    assert "('/home/user', 'ENOSPC')" in text and "('/tmp', 'ENOSPC')" in text, text
    assert "wrote 3G" not in text
    assert shutil.disk_usage("/").free > free_before - 64 * 1024**2, "the host's disk filled"
    # a full disk is ENOSPC, and the kernel lives on with its state
    events = server.execute(sandbox, "x = 41\nx + 1", user=ATTACKER)
    assert next(e["text"] for e in events if e.get("type") == "result") == "42", events
    assert_whole(server, bystander)


def test_the_containers_own_output_cannot_fill_the_host_disk(guarded):
    server, bystander = guarded
    sandbox = create(server)
    # PID 1's stdout is kept by the engine on the host; PID 1 runs as root now (not the sandbox's
    # user), so it is not even writable; the engine's log is capped all the same
    code = (
        "try:\n"
        "    with open('/proc/1/fd/1', 'w') as out:\n"
        "        for _ in range(200):\n"
        "            out.write('x' * 1_000_000 + '\\n')\n"
        "    outcome = 'written'\n"
        "except PermissionError:\n"
        "    outcome = 'refused'\n"
        "outcome"
    )
    events = server.execute(sandbox, code, user=ATTACKER)
    assert any(e.get("text") == "'refused'" for e in events), events
    container = docker.from_env().containers.get(f"jupyter-sandbox-{sandbox}")
    log = Path(container.attrs["LogPath"])
    assert log.stat().st_size < 4 * 1024**2, f"the engine kept {log.stat().st_size} bytes of the container's output"
    assert_whole(server, bystander)
