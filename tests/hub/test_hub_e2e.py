"""Issue 20's "Must show", for alice's single-user server on a real JupyterHub (tests/hub/conftest.py):
her server, kernels and terminals (JupyterLab's, and any process of hers) can't reach the engine,
yet through the Hub's proxy and her server she uses sandboxes, with streamed output and notebooks
of %%sandbox cells; a quota across her named servers that her own config can't raise; no sandbox
process runs as a host account's uid; stopping her server leaves nothing behind; and the example
config runs as written, with PAM logins of real Unix users.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import docker
import httpx
import nbformat
import pytest
from test_kernel import KernelSocket
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_sandbox.backends.base import LABEL_PREFIX

from servers import SESSION, SESSION_LABEL

# Shows that the engine is out of reach: the docker CLI (as a terminal would run it) and the
# socket itself (as docker-py or any program would), each must fail.
ENGINE_PROBE = """
import os, shutil, socket, subprocess
cli = subprocess.run([shutil.which("docker") or "/usr/bin/docker", "ps"], capture_output=True, text=True)
print("docker ps:", cli.returncode, cli.stderr.strip()[:200])
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/docker.sock")
    s.sendall(b"GET /_ping HTTP/1.0\\r\\n\\r\\n")
    print("socket:", s.recv(100))
except OSError as e:
    print("socket: refused", e)
print("groups:", os.getgroups())
"""


class UserServer:
    """A user's single-user server, reached through the Hub's proxy with the user's own token."""

    def __init__(self, url: str, token: str):
        self.url = url  # ends with /
        self.token = token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 180)
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(method, "sandbox/api/" + path, **kwargs)

    def create(self, name: str) -> dict[str, Any]:
        r = self.api("POST", "sandboxes", json={"name": name})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def sandboxes(self) -> list[dict[str, Any]]:
        r = self.api("GET", "sandboxes")
        assert r.status_code == 200, r.text
        return list(r.json())

    def remove_all(self) -> None:
        for sandbox in self.sandboxes():
            r = self.api("DELETE", f"sandboxes/{sandbox['id']}")
            assert r.status_code in (204, 404), r.text

    def execute(self, sandbox: str, code: str) -> list[tuple[float, dict[str, Any]]]:
        """The NDJSON events of one execution, each with the time it arrived."""
        arrived = []
        with httpx.stream(
            "POST",
            f"{self.url}sandbox/api/sandboxes/{sandbox}/execute",
            headers={"Authorization": f"token {self.token}"},
            json={"code": code},
            timeout=180,
        ) as r:
            assert r.status_code == 200, r.read().decode()
            for line in r.iter_lines():
                if line.strip():
                    arrived.append((time.monotonic(), json.loads(line)))
        return arrived

    @asynccontextmanager
    async def kernel(self, name: str = "python3") -> Any:
        """A notebook kernel started through the server's kernels API, and its websocket (as
        JupyterLab uses it); shut down at the end."""
        r = self.request("POST", "api/kernels", json={"name": name})
        assert r.status_code == 201, r.text
        kernel_id = r.json()["id"]
        url = self.url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {self.token}"}))
        socket = KernelSocket(ws)
        try:
            yield socket
        finally:
            socket.close()
            self.request("DELETE", f"api/kernels/{kernel_id}")

    async def terminal_output(self, command: str, until: str, timeout: float = 120) -> str:
        """Type ``command`` in a new terminal of the server (its terminals API and websocket, as
        JupyterLab's terminal); what it shows until ``until`` appears (lower case)."""
        r = self.request("POST", "api/terminals")
        assert r.status_code == 200, r.text
        name = r.json()["name"]
        url = self.url.replace("http", "ws", 1) + f"terminals/websocket/{name}"
        ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {self.token}"}))
        shown = ""
        try:
            await ws.write_message(json.dumps(["stdin", command + "\r"]))
            deadline = time.monotonic() + timeout
            while until not in shown.lower():
                raw = await asyncio.wait_for(ws.read_message(), max(deadline - time.monotonic(), 0.1))
                assert raw is not None, f"the terminal closed: {shown!r}"
                kind, *content = json.loads(raw)
                if kind == "stdout":
                    shown += content[0]
            return shown
        finally:
            ws.close()
            self.request("DELETE", f"api/terminals/{name}")


def stdout_of(outputs: list[dict[str, Any]]) -> str:
    return "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")


def containers_of(user: str) -> list[Any]:
    """The containers of this test session that belong to that Hub user."""
    client = docker.from_env()
    try:
        labels = [f"{SESSION_LABEL}={SESSION}", f"{LABEL_PREFIX}.owner={user}"]
        return list(client.containers.list(all=True, filters={"label": labels}))
    finally:
        client.close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(1)
    return value


@pytest.fixture(scope="module")
def alice(hub: Any) -> Iterator[UserServer]:
    """alice's default server, running for the module; her sandboxes removed after each use."""
    url = hub.start_server("alice")
    server = UserServer(url, hub.token_for("alice"))
    yield server
    server.remove_all()


@contextmanager
def alice_config(hub: Any, text: str) -> Iterator[Path]:
    """alice's own ~/.jupyter/jupyter_server_config.py, written as her (her servers read it)."""
    home = Path(pwd.getpwnam(hub.users["alice"]).pw_dir)
    path = home / ".jupyter" / "jupyter_server_config.py"
    r = hub.run_as("alice", ["sh", "-c", f'mkdir -p ~/.jupyter && cat > "{path}"'], input=text)
    assert r.returncode == 0, r.stderr
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


async def test_alices_server_kernel_and_terminal_cannot_reach_the_engine(hub: Any, alice: UserServer) -> None:
    # a process of hers, as her terminal runs it
    r = hub.run_as("alice", ["docker", "ps"])
    assert r.returncode != 0, r.stdout
    assert "permission denied" in r.stderr.lower(), r.stderr
    r = hub.run_as("alice", ["python", "-c", ENGINE_PROBE])
    assert "socket: refused" in r.stdout and "docker ps: 0" not in r.stdout, (r.stdout, r.stderr)

    # a terminal of hers in JupyterLab, opened through the Hub's proxy
    shown = await alice.terminal_output("echo GROUPS=$(id -nG); docker ps", until="permission denied")
    groups = re.search(r"GROUPS=(?!\$)([^\r\n]*)", shown)  # the output, not the echo of the typed line
    assert groups and "docker" not in groups[1].split(), shown

    # a notebook kernel of hers, started by her server through the Hub's proxy
    async with alice.kernel() as kernel:
        reply, outputs = await kernel.execute(ENGINE_PROBE + "\nimport getpass; print('user:', getpass.getuser())")
        text = stdout_of(outputs)
        assert reply["content"]["status"] == "ok", (reply["content"], text)
        assert f"user: {hub.users['alice']}" in text, text
        assert "socket: refused" in text and "docker ps: 0" not in text, text
        assert "permission denied" in text.lower(), text


def test_alice_runs_code_with_streamed_output_through_the_proxy_and_her_server(alice: UserServer) -> None:
    sandbox = alice.create("streamed")
    try:
        events = alice.execute(
            sandbox["id"], "import time\nprint('first', flush=True)\ntime.sleep(3)\nprint('second', flush=True)\n6 * 7"
        )
        kinds = [e["type"] for _, e in events]
        assert kinds[-1] == "end_of_execution", kinds
        stdout = [(t, e["text"]) for t, e in events if e["type"] == "stdout"]
        (t_first, first), (t_second, second) = stdout
        assert (first, second) == ("first\n", "second\n")
        # streamed: the first line arrived while the code still slept, not with the end
        assert t_second - t_first >= 1.5, (t_first, t_second)
        assert any(e["type"] == "result" and e.get("text") == "42" for _, e in events), events
        # the sandbox belongs to her Hub user, whichever server it came through
        assert alice.api("GET", f"sandboxes/{sandbox['id']}").status_code == 200
    finally:
        alice.api("DELETE", f"sandboxes/{sandbox['id']}")


async def test_a_notebook_of_sandbox_cells_runs_in_alices_server(alice: UserServer) -> None:
    """The cells of a notebook, run by a kernel of her server as JupyterLab runs them."""
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext jupyter_sandbox"),
            nbformat.v4.new_code_cell("%%sandbox hub-notebook\nx = 21 * 2\nprint('x is', x)"),
            nbformat.v4.new_code_cell("%%sandbox hub-notebook\nimport os\nprint('still', x, 'as uid', os.getuid())"),
            nbformat.v4.new_code_cell("print('done in the notebook kernel')"),
        ]
    )
    texts = []
    try:
        async with alice.kernel() as kernel:
            for cell in notebook.cells:
                reply, outputs = await kernel.execute(cell.source, timeout=240)
                texts.append(stdout_of(outputs))
                assert reply["content"]["status"] == "ok", (cell.source, reply["content"], texts[-1])
        assert "x is 42" in texts[1], texts
        assert "still 42" in texts[2], texts
        assert "done in the notebook kernel" in texts[3], texts
    finally:
        alice.remove_all()


async def test_a_notebook_on_the_sandboxed_kernel_runs_through_the_service(hub: Any, alice: UserServer) -> None:
    """The "Python 3 (sandboxed)" kernel of her server: its kernel lives in a sandbox of the service,
    reached over the service's kernel websocket with her server's Hub token (her server holds no
    engine); its state lasts from cell to cell, input() is answered, and its sandbox goes with it."""
    async with alice.kernel("python3-sandboxed") as kernel:
        reply, outputs = await kernel.execute("import os, socket\nz = 6 * 7", timeout=240)
        assert reply["content"]["status"] == "ok", reply["content"]
        reply, outputs = await kernel.execute("print(z, os.getuid() != 0, socket.gethostname())")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert stdout_of(outputs) == "42 True sandbox\n", outputs
        reply, outputs = await kernel.execute("print('got', input('name? '))", stdin=lambda prompt: "alice")
        assert stdout_of(outputs).endswith("got alice\n"), outputs
        (sandbox,) = [s for s in alice.sandboxes() if s["kind"] == "kernel"]
        assert sandbox["owner"] == hub.users["alice"]  # hers, at the service (her server lists the service's)
    deadline = time.monotonic() + 60
    while [s for s in alice.sandboxes() if s["kind"] == "kernel"]:
        assert time.monotonic() < deadline, "the kernel's sandbox outlived its kernel"
        time.sleep(1)


def test_a_notebook_run_by_nbconvert_as_alice(hub: Any, alice: UserServer, tmp_path: Path) -> None:
    """``jupyter nbconvert --execute`` in her terminal, its magics pointed at her server."""
    home = Path(pwd.getpwnam(hub.users["alice"]).pw_dir)
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext jupyter_sandbox"),
            nbformat.v4.new_code_cell("%%sandbox nbconvert\ny = sum(range(10))"),
            nbformat.v4.new_code_cell("%%sandbox nbconvert\nprint('y =', y)"),
        ]
    )
    source = home / "sandboxed.ipynb"
    r = hub.run_as("alice", ["sh", "-c", f'cat > "{source}"'], input=nbformat.writes(notebook))
    assert r.returncode == 0, r.stderr
    try:
        r = hub.run_as(
            "alice",
            ["jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", "executed", str(source)],
            env={"JUPYTER_SANDBOX_URL": alice.url, "JUPYTER_SANDBOX_TOKEN": alice.token},
        )
        assert r.returncode == 0, r.stderr[-3000:]
        executed = nbformat.reads((home / "executed.ipynb").read_text(), as_version=4)
        last = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
        assert "y = 45" in last, executed.cells[-1].outputs
    finally:
        alice.remove_all()
        source.unlink(missing_ok=True)
        (home / "executed.ipynb").unlink(missing_ok=True)


def test_the_quota_holds_across_alices_named_servers_and_her_config_cannot_raise_it(hub: Any) -> None:
    assert hub.max_sandboxes_per_user == 2
    token = hub.token_for("alice")
    with alice_config(hub, "c.SandboxManager.max_sandboxes_per_user = 50\nc.SandboxManager.max_memory = '64G'\n"):
        one = UserServer(hub.start_server("alice", "one"), token)
        two = UserServer(hub.start_server("alice", "two"), token)
        try:
            one.remove_all()
            one.create("quota-a")
            two.create("quota-b")
            for server in (one, two):
                r = server.api("POST", "sandboxes", json={"name": "quota-c"})
                assert r.status_code == 429, (r.status_code, r.text)
            assert len(one.sandboxes()) == len(two.sandboxes()) == 2
        finally:
            one.remove_all()
            hub.stop_server("alice", "one")
            hub.stop_server("alice", "two")


# The container's own plumbing runs as root (its init and the `sleep` that keeps it up, with only
# the capabilities to start the sandbox's processes as its own uids); root is no account that
# /proc/<pid>/root would tell anything new.
CONTAINER_PLUMBING = {"docker-init", "tini", "sleep"}


def host_processes_of(container: Any) -> list[tuple[int, str, set[int]]]:
    """(pid, command, host uids: real and effective) of every process of a container (docker top's pids)."""
    top = container.top(ps_args="-eo pid,comm")
    pid_column, command_column = top["Titles"].index("PID"), top["Titles"].index("COMMAND")
    found = []
    for row in top["Processes"]:
        status = Path(f"/proc/{row[pid_column]}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        found.append((int(row[pid_column]), row[command_column], {int(uid) for uid in uid_line.split()[1:3]}))
    return found


def test_no_sandbox_process_runs_as_a_host_accounts_uid(hub: Any, alice: UserServer) -> None:
    sandbox = alice.create("uids")
    try:
        alice.execute(sandbox["id"], "import subprocess\np = subprocess.Popen(['sleep', '60'])")
        containers = [c for c in containers_of(hub.users["alice"]) if c.status == "running"]
        assert containers, "no running container of alice's"
        accounts = {entry.pw_uid: entry.pw_name for entry in pwd.getpwall()}
        for container in containers:
            processes = host_processes_of(container)
            # the code's own child (`sleep 60`) is among them, not as root
            assert any(command == "sleep" and uids != {0} for _, command, uids in processes), processes
            for pid, command, uids in processes:
                if uids == {0}:
                    assert command in CONTAINER_PLUMBING, f"{container.name}: {command} (pid {pid}) runs as root"
                    continue
                taken = {uid: accounts[uid] for uid in uids if uid in accounts}
                assert not taken, f"{container.name}: {command} (pid {pid}) runs as host accounts' uids {taken}"
    finally:
        alice.api("DELETE", f"sandboxes/{sandbox['id']}")


def test_stopping_alices_server_removes_her_sandboxes_and_their_containers(hub: Any) -> None:
    token = hub.token_for("alice")
    server = UserServer(hub.start_server("alice", "stopped"), token)
    sandbox = server.create("goes-with-the-server")
    label = f"{LABEL_PREFIX}.sandbox"
    assert any(c.labels.get(label) == sandbox["id"] for c in containers_of(hub.users["alice"]))

    hub.stop_server("alice", "stopped")

    # the service sees the server gone (it polls the Hub) and removes what was made through it
    def gone() -> bool:
        listed = httpx.get(
            f"{hub.service_url}sandbox/api/sandboxes", headers={"Authorization": f"token {token}"}, timeout=60
        )
        assert listed.status_code == 200, listed.text
        ids = {s["id"] for s in listed.json()}
        return sandbox["id"] not in ids and not any(
            c.labels.get(label) == sandbox["id"] for c in containers_of(hub.users["alice"])
        )

    wait_for(gone, 90, "alice's sandbox and its container removed after her server stopped")


def test_the_example_config_runs_as_written(hub: Any, example_hub: Any) -> None:
    """`jupyterhub -f examples/jupyterhub/jupyterhub_config.py --ip --port`: a real Unix user logs
    in with her password (PAM), her server (as her) is in Hub mode, and she runs code through it."""
    name, password = hub.users["alice"], uuid.uuid4().hex
    hub.set_password("alice", password)
    with httpx.Client(base_url=example_hub.url, timeout=180) as browser:
        login = browser.get("/hub/login")
        assert login.status_code == 200, login.text
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text)
        assert xsrf, login.text
        refused = browser.post("/hub/login", data={"username": name, "password": "wrong", "_xsrf": xsrf[1]})
        assert refused.status_code == 403, refused.status_code
        r = browser.post("/hub/login", data={"username": name, "password": password, "_xsrf": xsrf[1]})
        assert r.status_code == 302, (r.status_code, r.text[-2000:], example_hub.log())
        r = browser.post(
            f"/hub/api/users/{name}/tokens", json={"note": "example"}, headers={"X-XSRFToken": browser.cookies["_xsrf"]}
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]

    api = {"Authorization": f"token {token}"}
    r = httpx.post(f"{example_hub.url}/hub/api/users/{name}/server", headers=api, timeout=60)
    assert r.status_code in (201, 202), r.text

    def ready() -> Any:
        model = httpx.get(f"{example_hub.url}/hub/api/users/{name}", headers=api, timeout=60).json()
        server = model.get("servers", {}).get("")
        assert server is not None, f"her server failed to start:\n{example_hub.log()}"
        return server if server.get("ready") else None

    server = UserServer(example_hub.url + wait_for(ready, 240, "her server ready")["url"], token)
    try:
        config = server.api("GET", "config")
        assert config.status_code == 200 and config.json().get("mode") == "hub", config.text
        sandbox = server.create("example")
        events = server.execute(sandbox["id"], "import os\nprint(os.getuid())\n6 * 7")
        assert any(e["type"] == "result" and e.get("text") == "42" for _, e in events), events
        server.remove_all()
    finally:
        httpx.delete(f"{example_hub.url}/hub/api/users/{name}/server", headers=api, timeout=120)
