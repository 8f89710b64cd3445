"""The sandboxed notebook kernel, end to end: a real `jupyter server` (Docker backend) starts a
"Python 3 (sandboxed)" kernel through its kernels API, and the test talks to it over the
server's kernel websocket, as JupyterLab does. Then the outside view: `docker inspect`, the
Sandboxes API, the container gone after shutdown, the server's kernel culling.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import docker
import pytest
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_sandbox.backends.base import LABEL_PREFIX
from jupyter_sandbox.kernel import KERNEL_NAME
from jupyter_sandbox.models import limit_text

from servers import IMAGE, JupyterServer


class KernelSocket:
    """The server's kernel websocket (its JSON protocol), with the few requests a notebook sends."""

    def __init__(self, ws):
        self.ws = ws
        self.session = Session(username="test")
        self.seen: list[dict] = []  # every message read, in order

    @classmethod
    async def open(cls, server: JupyterServer, kernel_id: str) -> KernelSocket:
        url = server.url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {server.token}"}))
        return cls(ws)

    async def send(self, channel: str, msg_type: str, content: dict) -> str:
        msg = self.session.msg(msg_type, content)
        msg["channel"] = channel
        await self.ws.write_message(json.dumps(msg, default=json_default))
        return msg["header"]["msg_id"]

    async def read(self, timeout: float = 120) -> dict:
        raw = await asyncio.wait_for(self.ws.read_message(), timeout)
        assert raw is not None, "the server closed the kernel websocket"
        msg = json.loads(raw)
        self.seen.append(msg)
        return msg

    async def execute(self, code: str, *, stdin=None, timeout: float = 120) -> tuple[dict, list[dict]]:
        """(execute_reply, iopub messages of this request). ``stdin(content)`` answers input requests."""
        msg_id = await self.send(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": stdin is not None,
                "stop_on_error": True,
            },
        )
        reply, outputs, idle = None, [], False
        deadline = time.monotonic() + timeout
        while reply is None or not idle:
            msg = await self.read(max(deadline - time.monotonic(), 0.1))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["channel"] == "shell" and msg["msg_type"] == "execute_reply":
                reply = msg
            elif msg["channel"] == "stdin" and msg["msg_type"] == "input_request":
                await self.send("stdin", "input_reply", {"value": stdin(msg["content"])})
            elif msg["channel"] == "iopub":
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
                else:
                    outputs.append(msg)
        return reply, outputs

    async def request(self, channel: str, msg_type: str, content: dict, timeout: float = 60) -> dict:
        """Send a request and return its reply (other messages are kept in ``seen``)."""
        msg_id = await self.send(channel, msg_type, content)
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.read(max(deadline - time.monotonic(), 0.1))
            if msg["channel"] == channel and msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg

    async def nudge(self, timeout: float = 60) -> None:
        """Ask for kernel_info until its status arrives on iopub: a kernel restarted at the same
        addresses is reached by iopub (a subscription) only once ZMQ has reconnected, and what it
        publishes before that is lost (jupyter_server nudges new connections the same way)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg_id = await self.send("shell", "kernel_info_request", {})
            answered_by = time.monotonic() + 1
            while time.monotonic() < answered_by:
                try:
                    msg = await self.read(max(answered_by - time.monotonic(), 0.05))
                except asyncio.TimeoutError:
                    break
                if msg["channel"] == "iopub" and msg.get("parent_header", {}).get("msg_id") == msg_id:
                    return
        raise AssertionError("the kernel's iopub never reached the websocket")

    async def wait_for_status(self, state: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.read(max(deadline - time.monotonic(), 0.1))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == state:
                return

    def close(self) -> None:
        self.ws.close()


def result_of(outputs: list[dict]) -> str | None:
    return next((m["content"]["data"]["text/plain"] for m in outputs if m["msg_type"] == "execute_result"), None)


def stream_of(outputs: list[dict], name: str = "stdout") -> str:
    return "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == name)


def containers_of(sandbox_id: str) -> list:
    client = docker.from_env()
    try:
        return client.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}.sandbox={sandbox_id}"})
    finally:
        client.close()


HARDENING = (
    "ReadonlyRootfs",
    "CapDrop",
    "CapAdd",
    "SecurityOpt",
    "PidsLimit",
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "NetworkMode",
    "Init",
    "Runtime",
    "IpcMode",
    "Privileged",
)


def hardening(container) -> dict:
    host = container.attrs["HostConfig"]
    return {
        **{key: host.get(key) for key in HARDENING},
        "Tmpfs": sorted(host.get("Tmpfs") or {}),
        "User": container.attrs["Config"]["User"],
        "Binds": len(host.get("Binds") or []),
    }


@pytest.fixture(scope="module")
def kernel_server(docker_ready, tmp_path_factory):
    config = {"DockerBackend": {"default_image": IMAGE}}
    with JupyterServer(tmp_path_factory.mktemp("kernel-server"), config=config) as server:
        yield server


async def start_kernel(server: JupyterServer) -> str:
    r = await asyncio.to_thread(server.request, "POST", "api/kernels", json={"name": KERNEL_NAME})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def kernel_sandbox(server: JupyterServer, kernel_id: str) -> dict | None:
    sandboxes = server.api("GET", "sandboxes").json()
    return next((s for s in sandboxes if s["kernel_id"] == kernel_id and s["kind"] == "kernel"), None)


def test_the_sandboxed_kernelspec_is_offered(kernel_server):
    specs = kernel_server.get("api/kernelspecs").json()["kernelspecs"]
    spec = specs[KERNEL_NAME]["spec"]
    assert spec["display_name"] == "Python 3 (sandboxed)"
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "jupyter-sandbox-provisioner"


async def test_a_notebook_on_the_sandboxed_kernel(kernel_server):
    server = kernel_server
    kernel_id = await start_kernel(server)
    sandbox = kernel_sandbox(server, kernel_id)
    assert sandbox is not None and sandbox["status"] == "running"  # listed, marked as a notebook kernel
    (container,) = containers_of(sandbox["id"])

    # Hardened like any other sandbox of the same spec.
    other = server.api("POST", "sandboxes", json={"name": "plain"}).json()
    (plain,) = containers_of(other["id"])
    assert hardening(container) == hardening(plain)
    assert hardening(container)["ReadonlyRootfs"] and hardening(container)["CapDrop"] == ["ALL"]
    # root with only what the launcher needs to take a uid of its own; the kernel runs as the sandbox's
    # own uid, from DockerBackend.sandbox_uid_base up (below)
    assert hardening(container)["NetworkMode"] == "none" and hardening(container)["User"] == "0:0"
    assert sorted(c.removeprefix("CAP_") for c in hardening(container)["CapAdd"]) == ["KILL", "SETGID", "SETUID"]
    server.api("DELETE", "sandboxes/plain")
    # Code goes through the notebook, not the sandbox routes.
    refused = server.api("POST", f"sandboxes/{sandbox['id']}/execute", json={"code": "1"})
    assert refused.status_code == 409 and "notebook" in refused.json()["message"]

    ks = await KernelSocket.open(server, kernel_id)
    try:
        # state, inside the container
        await ks.execute("x = 41\nimport os, socket")
        reply, outputs = await ks.execute("x + 1, os.getuid() >= 2_000_000_000, socket.gethostname()")
        assert reply["content"]["status"] == "ok" and result_of(outputs) == "(42, True, 'sandbox')"

        # the debugger (JupyterLab's first requests on the control channel): debugpy in the sandbox answers
        for seq, command in enumerate(("initialize", "attach"), 1):
            arguments = (
                {
                    "clientID": "test",
                    "adapterID": "python",
                    "pathFormat": "path",
                    "linesStartAt1": True,
                    "columnsStartAt1": True,
                }
                if command == "initialize"
                else {}
            )
            reply = await ks.request(
                "control", "debug_request", {"type": "request", "seq": seq, "command": command, "arguments": arguments}
            )
            assert reply["msg_type"] == "debug_reply" and reply["content"]["success"], reply["content"]

        # a plot
        reply, outputs = await ks.execute("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
        pngs = [m["content"]["data"]["image/png"] for m in outputs if m["msg_type"] == "display_data"]
        assert reply["content"]["status"] == "ok" and base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n"

        # input() and getpass() get the answers sent on the stdin channel
        asked = []

        def answer(content):
            asked.append((content["prompt"], content["password"]))
            return "s3cret" if content["password"] else "Ada"

        reply, outputs = await ks.execute(
            "import getpass\nname = input('who? ')\npw = getpass.getpass('pw? ')\nprint(name, len(pw))", stdin=answer
        )
        assert asked == [("who? ", False), ("pw? ", True)] and stream_of(outputs) == "Ada 6\n"

        # an ipywidgets IntSlider: the comm opens, and a value change round-trips both ways
        reply, outputs = await ks.execute("import ipywidgets as w\ns = w.IntSlider(value=3)\ndisplay(s)")
        assert reply["content"]["status"] == "ok", reply["content"]
        opened = [
            m
            for m in outputs
            if m["msg_type"] == "comm_open" and m["content"]["data"]["state"].get("_model_name") == "IntSliderModel"
        ]
        assert opened and opened[0]["content"]["data"]["state"]["value"] == 3
        comm_id = opened[0]["content"]["comm_id"]
        await ks.send(
            "shell",
            "comm_msg",
            {"comm_id": comm_id, "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []}},
        )
        reply, outputs = await ks.execute("s.value")
        assert result_of(outputs) == "7"  # the frontend's change reached the kernel
        reply, outputs = await ks.execute("s.value = 9")
        updates = [
            m["content"]["data"] for m in outputs if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
        ]
        assert {"method": "update", "state": {"value": 9}} in [
            {"method": u["method"], "state": u["state"]} for u in updates
        ]  # and the kernel's reached the frontend

        # a long cell is interrupted (the server's interrupt: the control channel's interrupt_request)
        running = asyncio.ensure_future(ks.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(120)"))
        while not any(m["msg_type"] == "stream" and "sleeping" in m["content"].get("text", "") for m in ks.seen):
            await asyncio.sleep(0.5)
        started = time.monotonic()
        r = await asyncio.to_thread(server.request, "POST", f"api/kernels/{kernel_id}/interrupt")
        assert r.status_code == 204
        reply, _ = await asyncio.wait_for(running, 60)
        assert reply["content"]["ename"] == "KeyboardInterrupt" and time.monotonic() - started < 60
        reply, outputs = await ks.execute("x")
        assert result_of(outputs) == "41"  # state kept

        # a restart clears state; the same websocket reaches the new kernel
        r = await asyncio.to_thread(server.request, "POST", f"api/kernels/{kernel_id}/restart")
        assert r.status_code == 200, r.text
        await ks.nudge()
        reply, outputs = await ks.execute("'x' in dir()")
        assert result_of(outputs) == "False"
        assert kernel_sandbox(server, kernel_id)["id"] == sandbox["id"]  # the same sandbox, files kept
    finally:
        ks.close()

    # shutdown: the sandbox and its container are gone
    r = await asyncio.to_thread(server.request, "DELETE", f"api/kernels/{kernel_id}")
    assert r.status_code == 204
    assert containers_of(sandbox["id"]) == []
    assert kernel_sandbox(server, kernel_id) is None


async def test_a_kernel_that_dies_says_why_and_restarts(kernel_server):
    server = kernel_server
    kernel_id = await start_kernel(server)
    ks = await KernelSocket.open(server, kernel_id)
    try:
        await ks.execute("keep = 1")
        # Out of memory in a 512M sandbox: the kernel is killed; the server's restarter notices
        # (its poll is the provisioner's), restarts it, and says so on the websocket.
        # The cell that died says so itself, with the limit as the user set it (not the
        # engine's sum of memory, disk and /tmp), and its prompt stops waiting.
        spec = kernel_sandbox(server, kernel_id)["spec"]
        reply, outputs = await ks.execute("hog = []\nwhile True: hog.append(bytearray(64 * 1024**2))", timeout=180)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KernelDied", reply
        (error,) = [m["content"] for m in outputs if m["msg_type"] == "error"]
        assert "out of memory" in error["evalue"], error
        assert f"the sandbox has {limit_text(spec['memory'], spec['disk'])}" in error["evalue"], error
        await ks.wait_for_status("restarting", timeout=180)
        # the panel's view of it (the sandbox runs on, its kernel restarted) says why too
        reason = kernel_sandbox(server, kernel_id)["status_reason"] or ""
        assert "out of memory" in reason and limit_text(spec["memory"], spec["disk"]) in reason, reason
        model = server.get(f"api/kernels/{kernel_id}").json()
        assert "memory" in model.get("reason", "") or "killed" in model.get("reason", ""), model
        # JupyterLab's dialog about the restart says the model's reason (deaths.ts): the cell's own
        # words, without the advice to restart (the server does)
        assert "Restart the" not in model["reason"], model
        assert error["evalue"].startswith(model["reason"].rstrip(".")), (model, error)
        await ks.wait_for_status("idle", timeout=120)  # the new kernel answered
        deadline = time.monotonic() + 60
        while "its next cell says why" not in server.log(20000):  # the restart is complete
            assert time.monotonic() < deadline, server.log()
            await asyncio.sleep(0.5)
        _reply, outputs = await ks.execute("'keep' in dir()")
        assert result_of(outputs) == "False"
        # the first cell after the restart says why the old kernel is gone
        assert "The previous kernel died" in stream_of(outputs, "stderr")
        assert "memory" in stream_of(outputs, "stderr") or "killed" in stream_of(outputs, "stderr")
    finally:
        ks.close()
        await asyncio.to_thread(server.request, "DELETE", f"api/kernels/{kernel_id}")


async def test_the_servers_kernel_culling_removes_the_sandbox(docker_ready, tmp_path):
    config = {
        "DockerBackend": {"default_image": IMAGE},
        "MappingKernelManager": {"cull_idle_timeout": 10, "cull_interval": 2},
    }
    with JupyterServer(tmp_path, config=config) as server:
        kernel_id = await start_kernel(server)
        sandbox = kernel_sandbox(server, kernel_id)
        assert containers_of(sandbox["id"])
        deadline = time.monotonic() + 120
        while server.get(f"api/kernels/{kernel_id}").status_code == 200:
            assert time.monotonic() < deadline, "the idle kernel was not culled"
            await asyncio.sleep(2)
        assert containers_of(sandbox["id"]) == []
        assert kernel_sandbox(server, kernel_id) is None


async def test_the_provisioner_on_the_local_backend():
    """The provisioner uses whatever manager runs in the process (here, as a server's would be, a
    manager on the local backend): its sandbox is listed as a kernel's, restart and interrupt work,
    and shutdown removes it."""
    from jupyter_client.manager import AsyncKernelManager

    from jupyter_sandbox.core.current import set_running

    from conftest import make_manager

    manager = make_manager("local")
    set_running(manager, "alice")
    km = AsyncKernelManager(kernel_name=KERNEL_NAME)
    try:
        await km.start_kernel()
        (model,) = manager.list("alice")
        assert (model.kind, model.kernel_id, model.backend) == ("kernel", km.kernel_id, "local")
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            reply = await kc.execute_interactive("x = 1", timeout=60)
            assert reply["content"]["status"] == "ok"
            started = asyncio.Event()

            def on_output(msg):
                if msg["msg_type"] == "stream":
                    started.set()

            code = "import time; print('sleeping', flush=True); time.sleep(60)"
            running = asyncio.ensure_future(kc.execute_interactive(code, timeout=90, output_hook=on_output))
            await asyncio.wait_for(started.wait(), 60)  # the cell runs: SIGINT now reaches its code
            await km.interrupt_kernel()
            reply = await asyncio.wait_for(running, 60)
            assert reply["content"]["ename"] == "KeyboardInterrupt"
            await km.restart_kernel()
            await kc.wait_for_ready(timeout=60)
            outputs = []
            await kc.execute_interactive("print('x' in dir())", timeout=60, output_hook=outputs.append)
            assert [m["content"]["text"] for m in outputs if m["msg_type"] == "stream"] == ["False\n"]
            assert [m.id for m in manager.list("alice")] == [model.id]  # the same sandbox
        finally:
            kc.stop_channels()
        await km.shutdown_kernel()
        assert manager.list("alice") == []
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        set_running(None)
        await manager.shutdown()


async def test_the_death_notice_reaches_the_next_cell_once():
    """What the provisioner tells a restarted kernel (programs/death_notice.py, sent by
    _tell_next_cell, which waits for its reply with reply_to): the next cell prints it on stderr,
    the one after does not, and no name is left in the user's namespace. A plain local kernel
    stands for the restarted one."""
    from jupyter_client.manager import AsyncKernelManager

    from jupyter_sandbox.kernel.provisioner import SandboxProvisioner

    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        provisioner = SandboxProvisioner(kernel_id=km.kernel_id)
        provisioner.connection_info = km.get_connection_info()
        await provisioner._tell_next_cell("The previous kernel died: out of memory")

        async def stderr_of(code: str) -> str:
            outputs: list[dict] = []
            reply = await kc.execute_interactive(code, timeout=60, output_hook=outputs.append)
            assert reply["content"]["status"] == "ok", reply["content"]
            return "".join(
                m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
            )

        assert await stderr_of("x = 1") == "The previous kernel died: out of memory\n"
        assert await stderr_of("import sys; print([n for n in dir() if 'jupyter_sandbox' in n], file=sys.stderr)") == (
            "[]\n"
        )
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
