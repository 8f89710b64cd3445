"""The server's own state is private and never a path another user or a sandbox controls; the
model follows the container; a deaf kernel is replaced; network sandboxes are fenced."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

import docker
import pytest
from attacks import ATTACKER, assert_whole, create, guarded  # noqa: F401 (guarded is a fixture)

from jupyter_sandbox.core.identity import private_dir
from jupyter_sandbox.errors import StateDirError

from servers import JupyterServer, result_text


def test_a_state_folder_made_by_another_user_is_refused(docker_ready, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test makes a folder owned by another user: it needs root, as CI runs")
    data = tmp_path / "data"
    (data / "jupyter_sandbox").mkdir(parents=True)
    os.chown(data / "jupyter_sandbox", 65534, 65534)  # nobody made it first
    server = JupyterServer(tmp_path / "home", data_dir=data).start()
    try:
        assert "belongs to uid 65534" in server.log()
        # the extension refused to run on it: no sandbox API, nothing written there
        assert server.api("GET", "sandboxes").status_code == 404
        assert list((data / "jupyter_sandbox").iterdir()) == []
    finally:
        server.stop()


def test_a_state_folder_under_another_users_folder_is_refused(docker_ready, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test makes a folder owned by another user: it needs root, as CI runs")
    # The reported attack: the state folder's own part is checked, its parent is not. Here the
    # jupyter data dir belongs to another user, who could swap jupyter_sandbox/ (made by the server)
    # for a folder of theirs once the server made it.
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 65534, 65534)
    server = JupyterServer(tmp_path / "home", data_dir=data).start()
    try:
        log = server.log()
        assert f"{data}, on the way to the state folder {data}/jupyter_sandbox, is not safe" in log, log
        assert "belongs to uid 65534" in log
        assert server.api("GET", "sandboxes").status_code == 404  # no sandbox API on an unsafe folder
        assert list(data.iterdir()) == []  # nothing made there
    finally:
        server.stop()


def _safe(path: Path) -> str | None:
    """None when private_dir takes ``path``, else its message."""
    try:
        private_dir(str(path))
    except StateDirError as e:
        return e.message
    return None


def test_every_folder_and_symlink_on_the_state_folders_path_is_checked(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test makes folders owned by another user: it needs root, as CI runs")
    base = tmp_path / "base"
    base.mkdir(mode=0o755)
    # a folder anyone may write in (not sticky), two levels up: refused, and named
    (base / "open").mkdir()
    (base / "open").chmod(0o777)
    message = _safe(base / "open" / "deep" / "state")
    assert message and message.startswith(f"{base}/open, on the way") and "mode 777" in message, message
    assert not (base / "open" / "deep").exists()  # refused before anything was made under it
    # a sticky one (/tmp's case): others cannot move what is ours in it
    (base / "sticky").mkdir()
    (base / "sticky").chmod(0o1777)
    assert _safe(base / "sticky" / "state") is None
    # the parent made by another user in that sticky folder: refused
    (base / "sticky" / "theirs").mkdir()
    os.chown(base / "sticky" / "theirs", 65534, 65534)
    message = _safe(base / "sticky" / "theirs" / "state")
    assert message and message.startswith(f"{base}/sticky/theirs, on the way") and "uid 65534" in message, message
    # symlinks on the way are followed and checked: one of ours to a safe folder is fine...
    (base / "mine").mkdir()
    (base / "link").symlink_to(base / "mine")
    assert _safe(base / "link" / "state") is None and (base / "mine" / "state").is_dir()
    # ...one to another user's folder is not (the target is named)...
    (base / "to-theirs").symlink_to(base / "sticky" / "theirs")
    message = _safe(base / "to-theirs" / "state")
    assert message and message.startswith(f"{base}/sticky/theirs, on the way"), message
    # ...nor a symlink another user owns (they could point it elsewhere later)...
    (base / "their-link").symlink_to(base / "mine")
    os.lchown(base / "their-link", 65534, 65534)
    message = _safe(base / "their-link" / "state")
    assert message and message.startswith(f"{base}/their-link, on the way"), message
    # ...nor a loop
    (base / "loop").symlink_to("loop")
    assert "too many symbolic links" in (_safe(base / "loop" / "state") or "")


def test_kernel_sockets_live_in_a_private_folder_of_the_server(guarded):
    server, bystander = guarded
    # The reported attack: another local user made the folder the server used to adopt
    # (/tmp/jsbx-<uid>), to read the kernels' keys. The server now names its folder at random.
    trap = Path(tempfile.gettempdir()) / f"jsbx-{os.getuid()}"
    made_trap = not trap.exists()
    if made_trap:
        trap.mkdir(mode=0o777)
        trap.chmod(0o777)
        if os.geteuid() == 0:
            os.chown(trap, 65534, 65534)
    try:
        sandbox = create(server)
        server.execute(sandbox, "1", user=ATTACKER)
        if made_trap:
            assert list(trap.iterdir()) == [], "the server used a folder someone else made"
    finally:
        if made_trap:
            shutil.rmtree(trap, ignore_errors=True)
    sockets = [p for p in _open_unix_sockets(server.pid) if "/k-" in p]
    assert sockets, "the server has no kernel sockets open"
    for path in sockets:
        folder = os.path.dirname(path)
        st = os.lstat(folder)
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700, (folder, oct(st.st_mode))
        assert not stat.S_ISLNK(os.lstat(path).st_mode)
    assert_whole(server, bystander)


def _open_unix_sockets(pid: int) -> list[str]:
    """Paths of the unix sockets a process has bound or connected (from /proc/net/unix)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    paths = []
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[6] in inodes:
                paths.append(parts[7])
    return paths


def test_the_model_follows_its_container(guarded):
    server, bystander = guarded
    sandbox = create(server)
    docker.from_env().containers.get(f"jupyter-sandbox-{sandbox}").kill()
    deadline = time.monotonic() + 30
    while (model := server.api("GET", f"sandboxes/{sandbox}", user=ATTACKER).json())["status"] == "running":
        assert time.monotonic() < deadline, model
        time.sleep(0.3)
    assert model["status"] == "exited" and model["status_reason"], model
    r = server.api("POST", f"sandboxes/{sandbox}/execute", json={"code": "1"}, user=ATTACKER)
    assert r.status_code == 500 and r.json()["reason"] == "Kernel Died", r.text
    assert "Restart the sandbox" in r.json()["message"]
    assert server.api("POST", f"sandboxes/{sandbox}/restart", user=ATTACKER).status_code == 200
    assert result_text(server.execute(sandbox, "2 + 2", user=ATTACKER)) == "4"
    assert_whole(server, bystander)


def test_a_kernel_deaf_to_interrupts_is_replaced_at_the_timeout(guarded):
    server, bystander = guarded
    sandbox = create(server)
    deaf = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"
    started = time.monotonic()
    events = server.execute(sandbox, deaf, user=ATTACKER, timeout=2)
    error = next(e for e in events if e.get("type") == "error")
    assert error["name"] == "TimeoutError" and "restarted" in error["value"], error
    assert time.monotonic() - started < 30
    started = time.monotonic()
    assert result_text(server.execute(sandbox, "'alive'", user=ATTACKER)) == "'alive'"
    assert time.monotonic() - started < 10, "the next execution waited on the deaf kernel"
    assert_whole(server, bystander)


def test_network_sandboxes_reach_neither_the_metadata_address_nor_the_host(guarded):
    server, bystander = guarded
    r = server.api("POST", "sandboxes", json={"network": True}, user=ATTACKER)
    if r.status_code == 400:  # gVisor here runs with --network=none (see setup-docker.sh): said plainly
        assert r.json()["field"] == "network" and "--network=none" in r.json()["message"], r.text
        assert_whole(server, bystander)
        return
    assert r.status_code == 201, r.text
    sandbox = r.json()["id"]
    with socket.create_server(("0.0.0.0", 0)) as host_service:  # a service of the host, on every interface
        port = host_service.getsockname()[1]
        code = (
            "import socket\n"
            "def reach(host, port):\n"
            "    s = socket.socket(); s.settimeout(3)\n"
            "    try:\n"
            "        s.connect((host, port)); return 'connected'\n"
            "    except OSError as e:\n"
            "        return type(e).__name__\n"
            "gateway = [l.split()[2] for l in open('/proc/net/route') if l.split()[1] == '00000000'][0]\n"
            "gateway = socket.inet_ntoa(bytes.fromhex(gateway)[::-1])\n"
            f"(reach('169.254.169.254', 80), reach(gateway, {port}))"
        )
        text = result_text(server.execute(sandbox, code, user=ATTACKER))
    assert text and "connected" not in text, text
    assert_whole(server, bystander)
