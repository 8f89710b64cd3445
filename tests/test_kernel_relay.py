"""The kernel relay: kernels reached over the exec stream, with nothing mounted into the sandbox.

Every behaviour runs on three places: a local subprocess, a hardened container (runc) and
the same under gVisor (runsc). Containers carry ``org.jupyter-sandbox.test-relay=<run id>``
and are removed by the fixtures that made them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import stat
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

import pytest
from jupyter_client.asynchronous import AsyncKernelClient

from jupyter_sandbox.backends.kernel_relay import (
    DockerExecReader,
    ExecStream,
    KernelExited,
    KernelRelay,
    KernelRelayError,
    attach_request,
    open_docker_exec,
    open_subprocess_launcher,
    start_request,
)
from jupyter_sandbox.backends.programs.frames import (
    HB,
    IOPUB,
    LAUNCHER,
    SHELL,
    FrameDecoder,
    FrameError,
    Skipped,
    encode,
)

from conftest import IMAGE, require_docker

LABEL = "org.jupyter-sandbox.test-relay"
RUN_ID = uuid.uuid4().hex[:12]
SANDBOX_USER = "1000:1000"
STATE_DIR = "/tmp/.jsbx"


def hardened(runtime: str, memory: str) -> dict[str, Any]:
    """The sandbox's container settings; note what is absent: volumes, binds, mounts."""
    return dict(
        user=SANDBOX_USER,
        network_mode="none",
        read_only=True,
        tmpfs={
            "/tmp": "rw,noexec,nosuid,nodev,size=64m",
            "/home/user": "rw,nosuid,nodev,size=64m,uid=1000,gid=1000,mode=0755",
        },
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=256 if runtime == "runsc" else 128,  # gVisor's own threads count too
        mem_limit=memory,
        memswap_limit=memory,
        init=True,
        runtime=runtime,
        working_dir="/home/user",
        labels={LABEL: RUN_ID},
    )


# -- where launchers run ---------------------------------------------------------------------
class LocalPlace:
    name = "local"
    python = sys.executable

    def __init__(self, state_dir: str):
        self.state_dir = state_dir

    async def open(self, mode: str) -> ExecStream:
        return await open_subprocess_launcher(mode)

    async def alive(self, stream: ExecStream) -> bool:
        return stream.process.returncode is None


class DockerPlace:
    python = "python"
    state_dir = STATE_DIR

    def __init__(self, client, container, runtime: str):
        self.client = client
        self.container = container
        self.name = runtime

    async def open(self, mode: str) -> ExecStream:
        return await open_docker_exec(self.client.api, self.container.id, mode, user=SANDBOX_USER)

    async def alive(self, stream: ExecStream) -> bool:
        state = await asyncio.to_thread(self.client.api.exec_inspect, stream.exec_id)
        return bool(state["Running"])


class Containers:
    """Makes hardened containers and always removes them (see the fixture)."""

    def __init__(self):
        import docker

        self.client = docker.from_env()
        self.made: list = []
        self.shared: dict[str, DockerPlace] = {}

    def make(self, runtime: str, memory: str = "512m") -> DockerPlace:
        container = self.client.containers.run(IMAGE, ["sleep", "infinity"], detach=True, **hardened(runtime, memory))
        self.made.append(container)
        return DockerPlace(self.client, container, runtime)

    def place(self, runtime: str) -> DockerPlace:
        if runtime not in self.shared:
            self.shared[runtime] = self.make(runtime)
        return self.shared[runtime]

    def remove(self, place: DockerPlace) -> None:
        place.container.remove(force=True)
        self.made.remove(place.container)

    def close(self) -> None:
        import docker.errors

        for container in self.made:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        # anything of this run that escaped the list (e.g. a create that raised half-way)
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}={RUN_ID}"}):
            container.remove(force=True)
        self.client.close()


@pytest.fixture(scope="session")
def containers():
    require_docker()
    made = Containers()
    try:
        yield made
    finally:
        made.close()


PLACES = [
    "local",
    pytest.param("runc", marks=pytest.mark.docker),
    pytest.param("runsc", marks=pytest.mark.docker),
]
CONTAINER_PLACES = [pytest.param("runc", marks=pytest.mark.docker), pytest.param("runsc", marks=pytest.mark.docker)]


@pytest.fixture(scope="module", params=PLACES)
def place(request, tmp_path_factory):
    if request.param == "local":
        return LocalPlace(str(tmp_path_factory.mktemp("state")))
    require_docker("runsc" if request.param == "runsc" else None)
    return request.getfixturevalue("containers").place(request.param)


@pytest.fixture(scope="module", params=CONTAINER_PLACES)
def container_place(request):
    require_docker("runsc" if request.param == "runsc" else None)
    return request.getfixturevalue("containers").place(request.param)


# -- kernels ---------------------------------------------------------------------------------
@dataclass
class Kernel:
    place: Any
    kernel_id: str
    key: str
    socket_dir: str
    stream: ExecStream
    relay: KernelRelay
    client: AsyncKernelClient | None = None
    relays: list[KernelRelay] = field(default_factory=list)  # later ones, to clean up
    clients: list[AsyncKernelClient] = field(default_factory=list)

    @property
    def argv(self) -> list[str]:
        return [self.place.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


_SHORT_DIRS: list[str] = []


def short_dir() -> str:
    # unix socket paths must stay under 108 bytes: pytest's tmp_path can be too long
    path = tempfile.mkdtemp(prefix="jsbx-t-")
    _SHORT_DIRS.append(path)
    return path


@pytest.fixture(scope="module", autouse=True)
def _remove_short_dirs():
    yield
    while _SHORT_DIRS:
        shutil.rmtree(_SHORT_DIRS.pop(), ignore_errors=True)


async def connect(info: dict[str, Any]) -> AsyncKernelClient:
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    return client


async def start_kernel(place, argv: list[str] | None = None, **relay_options) -> Kernel:
    kernel_id = uuid.uuid4().hex
    key = secrets.token_hex(32)
    socket_dir = short_dir()
    stream = await place.open("start")
    relay = KernelRelay(stream.reader, stream.writer, socket_dir, kernel_id, key, **relay_options)
    kernel = Kernel(place, kernel_id, key, socket_dir, stream, relay)
    info = await relay.start(start_request(kernel_id, key, argv or kernel.argv, state_dir=place.state_dir))
    await relay.wait_ready(timeout=60)
    kernel.client = await connect(info)
    return kernel


async def attach(kernel: Kernel, **relay_options) -> tuple[ExecStream, KernelRelay, dict[str, Any]]:
    stream = await kernel.place.open("attach")
    relay = KernelRelay(stream.reader, stream.writer, kernel.socket_dir, kernel.kernel_id, kernel.key, **relay_options)
    kernel.relays.append(relay)
    info = await relay.start(attach_request(kernel.kernel_id, state_dir=kernel.place.state_dir))
    return stream, relay, info


async def shutdown(kernel: Kernel) -> None:
    """Stop the kernel (whichever relay still can) and close everything the test opened."""
    relays = [kernel.relay, *kernel.relays]
    live = [r for r in relays if not r.exited.done()]
    if live:
        try:
            await live[-1].stop_kernel(timeout=30)
        except KernelRelayError:
            pass  # the stream is gone already; the container fixture removes the rest
    for client in [kernel.client, *kernel.clients]:
        if client is not None:
            client.stop_channels()
    for relay in relays:
        await relay.close()
    shutil.rmtree(kernel.socket_dir, ignore_errors=True)


@pytest.fixture
async def kernel(place):
    k = await start_kernel(place)
    try:
        yield k
    finally:
        await shutdown(k)


async def run(client: AsyncKernelClient, code: str, **kwargs) -> tuple[dict, list[dict]]:
    outputs: list[dict] = []
    reply = await client.execute_interactive(code, output_hook=outputs.append, timeout=60, **kwargs)
    return reply["content"], outputs


def result_text(outputs: list[dict]) -> str:
    results = [o for o in outputs if o["msg_type"] == "execute_result"]
    assert results, [o["msg_type"] for o in outputs]
    return results[0]["content"]["data"]["text/plain"]


# -- through the relay -----------------------------------------------------------------------
async def test_kernel_info_and_execute(kernel):
    info = await kernel.client.kernel_info(reply=True, timeout=30)
    assert info["content"]["status"] == "ok"
    assert info["content"]["language_info"]["name"] == "python"
    content, outputs = await run(kernel.client, "1+1")
    assert content["status"] == "ok"
    assert result_text(outputs) == "2"


async def test_outputs_arrive_on_iopub_in_order(kernel):
    code = (
        "import sys\nprint('hello from the sandbox')\nprint('to stderr', file=sys.stderr)\n"
        "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))\n'done'"
    )
    content, outputs = await run(kernel.client, code)
    assert content["status"] == "ok"
    kinds = [o["msg_type"] for o in outputs]
    assert kinds[0] == "status" and outputs[0]["content"]["execution_state"] == "busy"
    assert kinds[-1] == "status" and outputs[-1]["content"]["execution_state"] == "idle"
    streams = {o["content"]["name"]: o["content"]["text"] for o in outputs if o["msg_type"] == "stream"}
    assert streams["stdout"] == "hello from the sandbox\n"
    assert streams["stderr"] == "to stderr\n"
    displays = [o["content"]["data"] for o in outputs if o["msg_type"] == "display_data"]
    assert displays and displays[0]["text/html"] == "<b>bold</b>"
    assert result_text(outputs) == "'done'"
    assert kinds.index("display_data") < kinds.index("execute_result")


async def test_input_request_over_stdin(kernel):
    async def answer(msg):
        assert msg["content"]["prompt"] == "name? "
        kernel.client.input("relay")

    content, outputs = await run(kernel.client, "input('name? ').upper()", allow_stdin=True, stdin_hook=answer)
    assert content["status"] == "ok"
    assert result_text(outputs) == "'RELAY'"


async def test_two_clients_get_their_own_replies(kernel):
    second = await connect(kernel.relay.connection_info)
    try:
        first_task = asyncio.ensure_future(run(kernel.client, "import time; time.sleep(1); 'first'"))
        _, outputs = await run(second, "'second'")
        assert result_text(outputs) == "'second'"
        _, outputs = await first_task
        assert result_text(outputs) == "'first'"
    finally:
        second.stop_channels()


async def test_large_messages_both_ways(kernel):
    """More than the host's 4 MiB write buffer in a request and in a reply: flow control
    on both ends (host pause/resume, the launcher's POLLOUT flush)."""
    blob = secrets.token_hex(3 << 20)  # 6 MiB of text inside the code
    content, outputs = await run(kernel.client, f"s = {blob!r}\nlen(s), s[-8:]")
    assert content["status"] == "ok", content
    assert result_text(outputs) == repr((len(blob), blob[-8:]))
    content, outputs = await run(kernel.client, "s[::-1]")
    assert result_text(outputs) == repr(blob[::-1])


@pytest.mark.parametrize("via", ["control channel", "launcher op"])
async def test_interrupt(kernel, via):
    client = kernel.client
    # stop_on_error=False: otherwise ipykernel aborts a request that reaches it right after
    # the error reply (a race with its own "stop aborting" message), like the one below
    msg_id = client.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(30)", stop_on_error=False)
    # interrupt once the cell's own code runs: ipykernel ignores SIGINT until it is about
    # to run it (execute_input comes earlier, so a signal right after it may be dropped)
    while True:
        msg = await client.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            break
    started = time.monotonic()
    reply = None
    for _ in range(3):
        # a SIGINT that lands while the kernel is still in print's flush may not end the
        # cell on a busy machine; like a person, press again after a while
        if via == "control channel":
            client.control_channel.send(client.session.msg("interrupt_request", {}))
        else:
            await kernel.relay.interrupt_kernel()
        try:
            while True:  # wait_for_ready may have left a kernel_info_reply queued
                msg = await client.get_shell_msg(timeout=8)
                if msg["parent_header"].get("msg_id") == msg_id:
                    reply = msg
                    break
            break
        except Empty:
            continue
    assert reply is not None, "the cell was not interrupted"
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - started < 25  # the sleep was cut short
    _, outputs = await run(client, "'still here'")
    assert result_text(outputs) == "'still here'"


async def test_exit_code_and_log_tail(place):
    marker = f"relay-log-marker-{uuid.uuid4().hex[:8]}"
    boot = (
        f"import sys; print({marker!r}, file=sys.stderr, flush=True)\n"
        "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
    )
    argv = [place.python, "-c", boot, "-f", "{connection_file}"]
    kernel = await start_kernel(place, argv)
    try:
        assert marker in await kernel.relay.log(timeout=30)
        kernel.client.execute("import os; os._exit(3)")
        info = await asyncio.wait_for(asyncio.shield(kernel.relay.exited), 60)
        assert info["reason"] == "exited"
        assert (info["code"], info["signal"]) == (3, None)
        assert marker in info["log"]
        # the launcher ends once it has reported
        assert await asyncio.wait_for(kernel.stream.wait(), 30) == 0
    finally:
        await shutdown(kernel)


async def test_a_kernel_that_cannot_start_is_reported(place):
    kernel_id, key = uuid.uuid4().hex, secrets.token_hex(32)
    socket_dir = short_dir()
    stream = await place.open("start")
    relay = KernelRelay(stream.reader, stream.writer, socket_dir, kernel_id, key)
    try:
        argv = [place.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        await relay.start(start_request(kernel_id, key, argv, cwd="/no/such/dir", state_dir=place.state_dir))
        with pytest.raises(KernelExited, match="/no/such/dir"):
            await relay.wait_ready(timeout=60)
        assert (await relay.exited)["reason"] == "exited"
    finally:
        await relay.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


async def test_a_launcher_that_cannot_run_is_reported_with_the_engines_words(container_place):
    kernel_id, key = uuid.uuid4().hex, secrets.token_hex(32)
    socket_dir = short_dir()
    api = container_place.client.api
    stream = await open_docker_exec(
        api, container_place.container.id, "start", user=SANDBOX_USER, python="no-such-python"
    )
    relay = KernelRelay(stream.reader, stream.writer, socket_dir, kernel_id, key)
    try:
        await relay.start(start_request(kernel_id, key, ["python"], state_dir=STATE_DIR))
        with pytest.raises(KernelExited, match=r"launcher did not start.*no-such-python"):
            await relay.wait_ready(timeout=60)
    finally:
        await relay.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


async def test_reattach_after_the_server_went_away(kernel):
    content, _ = await run(kernel.client, "x = 'survives'")
    assert content["status"] == "ok"
    pid = kernel.relay.pid
    # the server "crashes": its relay and client go away without stopping anything
    kernel.client.stop_channels()
    kernel.client = None
    await kernel.relay.close()
    assert (await kernel.relay.exited)["reason"] == "relay closed"
    assert await kernel.place.alive(kernel.stream), "the start launcher must keep waiting for its kernel"

    stream, relay, info = await attach(kernel)
    event = await relay.wait_ready(timeout=60)
    assert event == {"event": "attached", "pid": pid}
    client = await connect(info)
    kernel.clients.append(client)
    _, outputs = await run(client, "x")
    assert result_text(outputs) == "'survives'"

    # stopping through the new relay: the start launcher reaps the kernel, records, exits
    exit_info = await relay.stop_kernel(timeout=30)
    assert (exit_info["reason"], exit_info["signal"]) == ("exited", 9)
    assert await asyncio.wait_for(kernel.stream.wait(), 30) == 0
    assert await asyncio.wait_for(stream.wait(), 30) == 0

    # and a later attach reads the exit record
    _, late, _ = await attach(kernel)
    with pytest.raises(KernelExited) as gone:
        await late.wait_ready(timeout=60)
    assert gone.value.info["signal"] == 9


async def test_the_sandbox_has_no_mounts_and_its_links_and_fifos_reach_nothing(container_place):
    inspect = container_place.client.api.inspect_container(container_place.container.id)
    assert inspect["Mounts"] == []
    assert not inspect["HostConfig"].get("Binds")
    assert not inspect["HostConfig"].get("Mounts")
    assert not inspect["Config"].get("Volumes")

    secret_dir = short_dir()
    secret = os.path.join(secret_dir, "host-secret")
    with open(secret, "w") as f:
        f.write("HOST-ONLY-" + uuid.uuid4().hex)
    kernel = await start_kernel(container_place)
    try:
        base = f"{STATE_DIR}/k-{kernel.kernel_id}"
        code = (
            "import os\n"
            f"for name in ({base + '.log'!r}, {base + '.log.1'!r}, {base + '.exit'!r}):\n"
            "    try: os.remove(name)\n"
            "    except FileNotFoundError: pass\n"
            f"os.symlink({secret!r}, {base + '.log'!r})\n"
            f"os.mkfifo({base + '.log.1'!r})\n"
            f"os.symlink('/proc/self/environ', {base + '.exit'!r})\n"
            f"os.path.exists({secret!r})"
        )
        content, outputs = await run(kernel.client, code)
        assert content["status"] == "ok", content
        assert result_text(outputs) == "False"  # the host's file is not in the sandbox at all
        log = await asyncio.wait_for(kernel.relay.log(timeout=30), 40)  # no FIFO blocks anyone
        assert "HOST-ONLY" not in log
        content, outputs = await run(kernel.client, "1+1")
        assert result_text(outputs) == "2"
        # on the host, the relay's directory holds only the relay's own five sockets
        names = sorted(os.listdir(kernel.socket_dir))
        assert names == [f"k-{kernel.kernel_id}-{n}" for n in range(1, 6)]
        for name in names:
            st = os.lstat(os.path.join(kernel.socket_dir, name))
            assert stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid()
    finally:
        await shutdown(kernel)
        shutil.rmtree(secret_dir, ignore_errors=True)


async def container_state(place: DockerPlace) -> dict[str, Any]:
    return (await asyncio.to_thread(place.client.api.inspect_container, place.container.id))["State"]


async def test_memory_limit_kill_is_reported(containers, container_place):
    runtime = container_place.name
    place = containers.make(runtime, memory="256m")
    try:
        kernel = await start_kernel(place, liveness_timeout=10)
        try:
            kernel.client.execute("b = b'x' * (1 << 30)")  # touches every page: 1 GiB in 256 MiB
            info = await asyncio.wait_for(asyncio.shield(kernel.relay.exited), 120)
            state = await container_state(place)
            if info["reason"] == "exited":
                assert (info["code"], info["signal"]) == (None, 9), info
                assert state["Running"], "only the kernel was killed"
            else:
                # gVisor: the OOM killer takes the sandbox's sentry, so the whole container goes
                assert runtime == "runsc", info
                assert info["reason"] == "stream closed"
                deadline = time.monotonic() + 60  # the stream can close before dockerd notices
                while state["Running"] and time.monotonic() < deadline:
                    await asyncio.sleep(1)
                    state = await container_state(place)
                assert state["OOMKilled"] and not state["Running"], state
        finally:
            await shutdown(kernel)
    finally:
        containers.remove(place)


# -- the parts on their own ------------------------------------------------------------------
def wire(messages: list[tuple[int, list[bytes]]]) -> bytes:
    out: list[bytes] = []
    for kind, parts in messages:
        encode(kind, parts, out)
    return b"".join(out)


def test_decoder_reassembles_any_split():
    messages = [
        (SHELL, [b"client-id", b"<IDS|MSG>", b"sig", b"{}", b"{}", b"{}", b'{"code": "1+1"}']),
        (IOPUB, [b"\x01"]),
        (HB, [b"id", b"", b"ping"]),
        (LAUNCHER, [b'{"event": "pong"}']),
        (IOPUB, [os.urandom(300_000), b""]),
        (SHELL, []),
    ]
    data = wire(messages)
    for size in (1, 7, 4096, len(data)):
        decoder = FrameDecoder(1 << 20)
        got = []
        for i in range(0, len(data), size):
            got.extend(decoder.feed(data[i : i + size]))
        assert got == messages, size


def test_decoder_rejects_unknown_kinds_and_skips_what_is_over_its_cap():
    with pytest.raises(FrameError, match="kind 9"):
        FrameDecoder(1 << 20).feed(wire([(9, [b"x"])]))
    # the part that would go over the cap is not kept; the message still ends where it ends
    got = FrameDecoder(1000).feed(wire([(SHELL, [b"x" * 600, b"y" * 600, b"z"]), (HB, [b"ping"])]))
    assert got == [(SHELL, [b"x" * 600, Skipped(600), b"z"]), (HB, [b"ping"])]


async def test_docker_output_is_demultiplexed_across_any_split():
    def frame(stream: int, payload: bytes) -> bytes:
        return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

    data = frame(1, b"out-1 ") + frame(2, b"err-1 ") + frame(1, b"") + frame(1, b"out-2") + frame(2, b"err-2")
    for size in (1, 3, 9, len(data)):
        errors: list[bytes] = []
        reader = DockerExecReader(errors.append)
        for i in range(0, len(data), size):
            reader.feed_data(data[i : i + size])
        reader.feed_eof()
        assert await reader.read() == b"out-1 out-2"
        assert b"".join(errors) == b"err-1 err-2"


async def test_socket_dir_must_be_private(tmp_path):
    shared = short_dir()
    os.chmod(shared, 0o755)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; sys.stdin.read()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        relay = KernelRelay(proc.stdout, proc.stdin, shared, "k1", "key")
        with pytest.raises(KernelRelayError, match="mode 0700"):
            await relay.start()
        with pytest.raises(KernelRelayError, match="longer than"):
            KernelRelay(proc.stdout, proc.stdin, "/tmp/" + "d" * 100, "k1", "key")
    finally:
        proc.stdin.close()
        await proc.wait()


async def test_a_stream_that_breaks_the_protocol_is_closed():
    """A sandbox writing garbage ends its own relay, nothing else (plain StreamReader path)."""
    socket_dir = short_dir()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys, time; sys.stdout.buffer.write(bytes([7, 0, 0, 0, 1])); sys.stdout.flush(); time.sleep(60)",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    relay = KernelRelay(proc.stdout, proc.stdin, socket_dir, "k1", "key")
    try:
        await relay.start()
        info = await asyncio.wait_for(asyncio.shield(relay.exited), 30)
        assert info["reason"] == "stream closed"
        with pytest.raises(KernelExited, match="stream to the sandbox closed"):
            await relay.wait_ready(timeout=5)
    finally:
        await relay.close()
        proc.kill()
        await proc.wait()
        shutil.rmtree(socket_dir, ignore_errors=True)


# -- the launcher's own ZMTP peer against libzmq's sockets -----------------------------------
def pump(peers, until, timeout: float = 20) -> list[tuple[int, list[bytes]]]:
    """Drive launcher Peers the way its loop does until ``until(messages)`` holds."""
    import select

    from jupyter_sandbox.backends.programs.launcher import MAX_MESSAGE

    decoder, messages = FrameDecoder(MAX_MESSAGE, skip=False), []
    deadline = time.monotonic() + timeout
    while not until(messages):
        assert time.monotonic() < deadline, f"timed out; got {messages}"
        now = time.monotonic()
        poller = select.poll()
        by_fd = {}
        for peer in peers:
            peer.connect(now)
            if peer.sock is not None:
                poller.register(peer.fd, peer.events())
                by_fd[peer.fd] = peer
        out: list[bytes] = []
        for fd, events in poller.poll(100):
            peer = by_fd[fd]
            if events & select.POLLOUT:
                peer.on_writable(now)
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR) and peer.sock is not None:
                peer.on_readable(out, now)
        messages.extend(decoder.feed(b"".join(out)))
    return messages


def test_zmtp_peer_with_a_router_queues_until_bound_and_carries_long_frames():
    import zmq

    from jupyter_sandbox.backends.programs.launcher import Peer

    path = os.path.join(short_dir(), "shell")
    peer = Peer(SHELL, path, b"DEALER", b"relay-test")
    peer.send([b"early", b""])  # nobody listens yet: queued, like a libzmq DEALER
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    try:
        pump([peer], lambda m: peer.ready, timeout=1)  # retries until bound...
    except AssertionError:
        pass
    router.bind(f"ipc://{path}")  # ...which happens now
    try:
        big = os.urandom(300_000)  # long frames, and more than one read
        pump([peer], lambda m: peer.ready)
        peer.send([b"x" * 255, b"y" * 256, big])
        pump([peer], lambda m: not peer.outbuf)  # more than a socket buffer: POLLOUT flushes the rest
        assert router.poll(20_000)
        assert router.recv_multipart() == [b"relay-test", b"early", b""]
        assert router.poll(20_000)
        assert router.recv_multipart() == [b"relay-test", b"x" * 255, b"y" * 256, big]
        router.send_multipart([b"relay-test", b"reply", big])
        got = pump([peer], lambda m: len(m) >= 1)
        assert got == [(SHELL, [b"reply", big])]
    finally:
        peer.drop(0)
        router.close()
        ctx.term()


def test_zmtp_peer_subscribes_to_an_xpub_and_reconnects_after_a_restart():
    import zmq

    from jupyter_sandbox.backends.programs.launcher import Peer

    path = os.path.join(short_dir(), "iopub")
    ctx = zmq.Context()
    peer = Peer(IOPUB, path, b"SUB", b"")
    try:
        for attempt in range(2):  # the second XPUB is the kernel coming back
            xpub = ctx.socket(zmq.XPUB)
            xpub.linger = 0
            xpub.bind(f"ipc://{path}")
            pump([peer], lambda m: peer.ready)
            peer.send([b"\x01"])
            assert xpub.poll(20_000)
            assert xpub.recv() == b"\x01"
            xpub.send_multipart([b"topic", f"published {attempt}".encode()])
            got = pump([peer], lambda m: len(m) >= 1)
            assert got == [(IOPUB, [b"topic", f"published {attempt}".encode()])]
            xpub.close()
            pump([peer], lambda m: peer.sock is None)  # it notices the end...
    finally:
        peer.drop(0)
        ctx.term()


def test_zmtp_peer_works_with_a_rep_heartbeat():
    """Other kernels (and older ipykernel) answer heartbeats from a REP socket."""
    import zmq

    from jupyter_sandbox.backends.programs.launcher import Peer

    path = os.path.join(short_dir(), "hb")
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.linger = 0
    rep.bind(f"ipc://{path}")
    peer = Peer(HB, path, b"DEALER", b"relay-hb")
    try:
        peer.send([b"client-id", b"", b"ping"])  # what the host's ROUTER passes on
        pump([peer], lambda m: peer.ready and not peer.outbuf and not peer.pending)
        assert rep.poll(20_000)
        rep.send(rep.recv())
        assert pump([peer], lambda m: len(m) >= 1) == [(HB, [b"client-id", b"", b"ping"])]
    finally:
        peer.drop(0)
        rep.close()
        ctx.term()


def test_launcher_stderr_is_logged_by_line_and_capped(caplog):
    from jupyter_sandbox.backends.kernel_relay import STDERR_CAP, _StderrLog

    stderr = _StderrLog("launcher test")
    with caplog.at_level("WARNING", logger="jupyter_sandbox.backends.kernel_relay"):
        stderr.feed(b"first li")
        stderr.feed(b"ne\nsecond\n")
        stderr.feed(b"x\n" * 200_000)  # far over the cap, in one chunk
        stderr.feed(b"never logged\n")
        stderr.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:2] == ["launcher test: first line", "launcher test: second"]
    assert lines[-1] == "launcher test: further stderr output dropped"
    assert not any("never logged" in line for line in lines)
    assert sum(len(line) - len("launcher test: ") + 1 for line in lines[:-1]) <= STDERR_CAP + 1
