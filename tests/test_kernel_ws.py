"""The sandboxed notebook kernel through a sandbox service (issue 20's Hub mode), no Hub needed.

Two real `jupyter server` processes: A (Docker backend, users by header: the service's stand-in)
and B, whose "Python 3 (sandboxed)" kernels use A over HTTP and A's kernel websocket
(``JUPYTER_SANDBOX_SERVICE_URL`` = A, ``JUPYTERHUB_API_TOKEN`` = A's token, as a Hub gives a
user's server). The test talks to B's kernel websocket as JupyterLab does; the kernel's
sandbox is A's, and B holds none.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import deserialize_binary_message, serialize_binary_message
from test_kernel import KernelSocket, containers_of, result_of, start_kernel, stream_of
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from servers import IMAGE, JupyterServer


@pytest.fixture(scope="module")
def service(docker_ready, tmp_path_factory):
    """A: the sandbox service's stand-in (alice by default; ``X-Test-User`` names another user)."""
    config = {"DockerBackend": {"default_image": IMAGE}}
    with JupyterServer(tmp_path_factory.mktemp("service"), config=config, users=True) as server:
        yield server


@pytest.fixture(scope="module")
def user_server(service, tmp_path_factory):
    """B: a user's server whose sandboxed kernels live on A."""
    env = {"JUPYTER_SANDBOX_SERVICE_URL": service.url, "JUPYTERHUB_API_TOKEN": service.token}
    with JupyterServer(tmp_path_factory.mktemp("user-server"), env=env) as server:
        yield server


class CuttableProxy:
    """A TCP forwarder to ``port`` on 127.0.0.1 whose open connections ``cut`` closes: a network
    blink between a user's server and the service. Runs on the test's loop."""

    def __init__(self, port: int):
        self.target = port
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    def cut(self) -> int:
        cut = len(self.writers)
        for writer in self.writers:
            writer.transport.abort()
        return cut

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class BinaryKernelSocket(KernelSocket):
    """KernelSocket that also reads jupyter_server's binary frames (messages with buffers)."""

    async def read(self, timeout: float = 120) -> dict:
        raw = await asyncio.wait_for(self.ws.read_message(), timeout)
        assert raw is not None, "the server closed the kernel websocket"
        msg = deserialize_binary_message(raw) if isinstance(raw, bytes) else json.loads(raw)
        self.seen.append(msg)
        return msg

    async def send_with_buffers(self, channel: str, msg_type: str, content: dict, buffers: list[bytes]) -> str:
        msg = self.session.msg(msg_type, content)
        msg["channel"], msg["buffers"] = channel, buffers
        await self.ws.write_message(serialize_binary_message(msg), binary=True)
        return msg["header"]["msg_id"]


def kernel_sandboxes(server: JupyterServer) -> list[dict]:
    return [s for s in server.api("GET", "sandboxes").json() if s["kind"] == "kernel"]


async def channels(server: JupyterServer, sandbox: str, headers: dict[str, str]):
    url = server.url.replace("http", "ws", 1) + f"sandbox/api/sandboxes/{sandbox}/channels"
    return await websocket_connect(HTTPRequest(url, headers=headers))


async def test_a_notebook_kernel_through_the_service(service, user_server):
    kernel_id = await start_kernel(user_server)
    (sandbox,) = [s for s in kernel_sandboxes(service) if s["name"] == f"kernel-{kernel_id}"]
    assert sandbox["status"] == "running" and sandbox["owner"] == "alice"  # the token's user, on A
    assert kernel_sandboxes(user_server) == []  # B holds no sandbox of its own

    ks = await BinaryKernelSocket.open(user_server, kernel_id)
    try:
        await ks.nudge()
        # output, state, inside the sandbox
        await ks.execute("x = 41\nimport os, socket")
        reply, outputs = await ks.execute("print('hello', flush=True)\nx + 1, os.getuid(), socket.gethostname()")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert stream_of(outputs) == "hello\n" and result_of(outputs) == "(42, 1000, 'sandbox')"

        # the bridge's sockets are in a directory of B's user only, and take only messages signed with
        # its key (from B): one forged by someone who reached them anyway is dropped
        info = json.loads((user_server.runtime_dir / f"kernel-{kernel_id}.json").read_text())
        assert info["transport"] == "ipc" and stat.S_IMODE(os.stat(os.path.dirname(info["ip"])).st_mode) == 0o700
        forger = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        try:
            forger.connect(f"ipc://{info['ip']}-{info['shell_port']}")
            Session(key=b"not-the-key").send(forger, "execute_request", {"code": "x = 'forged'", "silent": False})
            deadline = time.monotonic() + 30
            while "did not verify" not in user_server.log(20000):
                assert time.monotonic() < deadline, user_server.log()
                await asyncio.sleep(0.2)
        finally:
            forger.close(linger=0)
        reply, outputs = await ks.execute("x")
        assert result_of(outputs) == "41"

        # input() answered over stdin
        reply, outputs = await ks.execute("name = input('who? ')\nprint('hi', name)", stdin=lambda content: "Ada")
        assert reply["content"]["status"] == "ok" and stream_of(outputs) == "hi Ada\n"

        # an ipywidgets comm: opened by the kernel, changed by the frontend, changed by the kernel
        reply, outputs = await ks.execute("import ipywidgets as w\ns = w.IntSlider(value=3)\ndisplay(s)")
        assert reply["content"]["status"] == "ok", reply["content"]
        (opened,) = [
            m
            for m in outputs
            if m["msg_type"] == "comm_open" and m["content"]["data"]["state"].get("_model_name") == "IntSliderModel"
        ]
        comm_id = opened["content"]["comm_id"]
        await ks.send(
            "shell",
            "comm_msg",
            {"comm_id": comm_id, "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []}},
        )
        reply, outputs = await ks.execute("s.value")
        assert result_of(outputs) == "7"
        reply, outputs = await ks.execute("s.value = 9")
        assert any(
            m["msg_type"] == "comm_msg" and m["content"]["data"].get("state") == {"value": 9} for m in outputs
        ), outputs

        # binary buffers both ways (how widgets send binary data): an Image's value
        reply, outputs = await ks.execute("img = w.Image(value=b'from-kernel', format='png')\ndisplay(img)")
        (opened,) = [
            m
            for m in outputs
            if m["msg_type"] == "comm_open" and m["content"]["data"]["state"].get("_model_name") == "ImageModel"
        ]
        assert [bytes(b) for b in opened["buffers"]] == [b"from-kernel"]
        image_comm = opened["content"]["comm_id"]
        await ks.send_with_buffers(
            "shell",
            "comm_msg",
            {"comm_id": image_comm, "data": {"method": "update", "state": {}, "buffer_paths": [["value"]]}},
            [b"from-client"],
        )
        reply, outputs = await ks.execute("bytes(img.value)")  # (a memoryview of the buffer)
        assert result_of(outputs) == "b'from-client'"
        reply, outputs = await ks.execute("img.value = b'back'")
        assert [b"back"] in [
            [bytes(b) for b in m["buffers"]]
            for m in outputs
            if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == image_comm
        ], outputs

        # interrupt (B's kernels API -> the provisioner -> A's interrupt route)
        running = asyncio.ensure_future(ks.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)"))
        while not any(m["msg_type"] == "stream" and "sleeping" in m["content"].get("text", "") for m in ks.seen):
            assert not running.done(), running.result()
            await asyncio.sleep(0.5)
        started = time.monotonic()
        r = await asyncio.to_thread(user_server.request, "POST", f"api/kernels/{kernel_id}/interrupt")
        assert r.status_code == 204, r.text
        reply, _ = await asyncio.wait_for(running, 60)
        assert reply["content"]["ename"] == "KeyboardInterrupt" and time.monotonic() - started < 30
        reply, outputs = await ks.execute("x")
        assert result_of(outputs) == "41"  # state kept

        # restart in place: variables gone, the kernel answers on the same websocket, same sandbox
        r = await asyncio.to_thread(user_server.request, "POST", f"api/kernels/{kernel_id}/restart")
        assert r.status_code == 200, r.text
        await ks.nudge()
        reply, outputs = await ks.execute("'x' in dir(), 6 * 7")
        assert result_of(outputs) == "(False, 42)"
        assert [s["id"] for s in kernel_sandboxes(service)] == [sandbox["id"]]

        # a kernel that dies: B's restarter (its poll is the service's kernel route) restarts it in
        # place, and the next cell says why the old one is gone
        await ks.send(
            "shell",
            "execute_request",
            {
                "code": "import os\nos._exit(3)",
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        await ks.wait_for_status("restarting", timeout=120)
        deadline = time.monotonic() + 120
        while "its next cell says why" not in user_server.log(20000):  # the restart is complete
            assert time.monotonic() < deadline, user_server.log()
            await asyncio.sleep(0.5)
        await ks.nudge()
        reply, outputs = await ks.execute("6 * 7")
        assert result_of(outputs) == "42" and "The previous kernel died" in stream_of(outputs, "stderr")
    finally:
        ks.close()

    # shutdown: A's sandbox and its container are gone
    r = await asyncio.to_thread(user_server.request, "DELETE", f"api/kernels/{kernel_id}")
    assert r.status_code == 204
    assert kernel_sandboxes(service) == []
    assert containers_of(sandbox["id"]) == []


async def test_the_channels_are_the_owners_only(service):
    r = service.api("POST", "kernels", json={"name": "alices-kernel"})
    assert r.status_code == 201, r.text
    sandbox = r.json()
    try:
        assert sandbox["kind"] == "kernel"
        # code goes through the channels, not the execute route
        assert service.api("POST", "sandboxes/alices-kernel/execute", json={"code": "1"}).status_code == 409
        assert service.api("GET", "sandboxes/alices-kernel/kernel").json() == {"exit_reason": None}

        token = {"Authorization": f"token {service.token}"}
        for who, headers, status in (
            ("bob", {**token, "X-Test-User": "bob"}, 404),  # another user's sandbox is unknown to him
            ("nobody", {}, 403),  # no token
        ):
            with pytest.raises(HTTPClientError) as refused:
                await channels(service, sandbox["id"], headers)
            assert refused.value.code == status, who
        assert service.api("GET", "sandboxes/alices-kernel/kernel", user="bob").status_code == 404
        assert service.api("POST", "sandboxes/alices-kernel/kernel/restart", user="bob").status_code == 404
        assert service.api("DELETE", "sandboxes/alices-kernel/kernel", user="bob").status_code == 404

        # an API sandbox's kernel is not a notebook's: no channels to it
        plain = service.api("POST", "sandboxes", json={"name": "plain"}).json()
        with pytest.raises(HTTPClientError) as refused:
            await channels(service, plain["id"], token)
        assert refused.value.code == 409
        service.api("DELETE", "sandboxes/plain")

        # the owner's websocket reaches the kernel
        ws = await channels(service, sandbox["id"], token)
        try:
            ks = KernelSocket(ws)
            reply = await ks.request("shell", "kernel_info_request", {})
            assert reply["msg_type"] == "kernel_info_reply" and reply["content"]["status"] == "ok"
        finally:
            ws.close()
    finally:
        service.api("DELETE", f"sandboxes/{sandbox['id']}")
    assert containers_of(sandbox["id"]) == []


async def test_the_websocket_to_the_service_is_opened_again_when_it_drops(service, tmp_path):
    proxy = CuttableProxy(service.port)
    port = await proxy.start()
    env = {"JUPYTER_SANDBOX_SERVICE_URL": f"http://127.0.0.1:{port}/", "JUPYTERHUB_API_TOKEN": service.token}
    user_server = JupyterServer(tmp_path / "user-server", env=env)
    await asyncio.to_thread(user_server.start)
    try:
        kernel_id = await start_kernel(user_server)
        ks = await KernelSocket.open(user_server, kernel_id)
        try:
            await ks.nudge()
            await ks.execute("x = 1")
            assert proxy.cut() >= 2  # the kernel websocket (and any REST call under way) drops
            # a cell run meanwhile waits in the bridge and runs once the websocket is open again
            reply, outputs = await ks.execute("x + 1", timeout=60)
            assert reply["content"]["status"] == "ok" and result_of(outputs) == "2"
            assert "opening it again" in user_server.log(20000)
        finally:
            ks.close()
        r = await asyncio.to_thread(user_server.request, "DELETE", f"api/kernels/{kernel_id}")
        assert r.status_code == 204
        assert [s for s in kernel_sandboxes(service) if s["name"] == f"kernel-{kernel_id}"] == []
    finally:
        await asyncio.to_thread(user_server.stop)
        await proxy.close()
