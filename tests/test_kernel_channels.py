"""The relay's in-process kernel client (backends/kernel_channels.py): routing, parsing, backpressure.

Unit tests on a stand-in relay, then a real kernel behind a relay (a local launcher; the Docker
places run through the server's tests) read by the direct client beside jupyter_client's over ZMQ.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import queue
import secrets
import time
import uuid
from typing import Any

import pytest
from test_kernel_relay import Kernel, LocalPlace, short_dir, shutdown, start_kernel

from jupyter_sandbox.backends.kernel_channels import MAX_REPLY_BYTES, DirectKernelClient
from jupyter_sandbox.backends.kernel_client import KernelClient
from jupyter_sandbox.backends.kernel_relay import KernelRelay, start_request
from jupyter_sandbox.backends.programs.frames import CONTROL, DELIMITER, IOPUB, SHELL, STDIN
from jupyter_sandbox.core.collector import ExecutionCollector
from jupyter_sandbox.core.execute_request import run_execute

KEY = "k" * 64


class StandInRelay:
    """What DirectKernelClient uses of a KernelRelay."""

    def __init__(self, key: str = KEY):
        self.key = key
        self.kernel_id = "test"
        self.direct_clients: list[DirectKernelClient] = []
        self.sent: list[tuple[int, list[bytes]]] = []
        self.resumed = 0

    def send(self, kind: int, parts: list[bytes]) -> None:
        self.sent.append((kind, parts))

    def resume(self) -> None:
        self.resumed += 1


def sign(frames: list[bytes], key: str = KEY) -> bytes:
    mac = hmac.new(key.encode(), digestmod=hashlib.sha256)
    for frame in frames:
        mac.update(frame)
    return mac.hexdigest().encode()


def message(msg_type: str, content: dict[str, Any], parent: str = "p1", n: int = 0, key: str = KEY) -> list[bytes]:
    header = {"msg_id": f"m{n}", "msg_type": msg_type, "date": "2026-01-01T00:00:00Z", "version": "5.3"}
    frames = [json.dumps(x).encode() for x in (header, {"msg_id": parent}, {}, content)]
    return [DELIMITER, sign(frames, key), *frames]


def direct(**options: Any) -> tuple[DirectKernelClient, StandInRelay]:
    relay = StandInRelay()
    return DirectKernelClient(relay, **options), relay  # type: ignore[arg-type]  # a stand-in


async def test_requests_are_signed_frames_with_its_own_identity():
    client, relay = direct()
    msg_id = client.execute("1+1", allow_stdin=False)
    kind, parts = relay.sent[-1]
    assert kind == SHELL and parts[0] == client.identity and parts[1] == DELIMITER
    assert parts[2] == sign(parts[3:7])
    header, content = json.loads(parts[3]), json.loads(parts[6])
    assert header["msg_id"] == msg_id and header["msg_type"] == "execute_request"
    assert content["code"] == "1+1" and content["allow_stdin"] is False
    client.input("answer")
    assert relay.sent[-1][0] == STDIN and json.loads(relay.sent[-1][1][6]) == {"value": "answer"}
    client.control_channel.send(client.session.msg("interrupt_request", {}))  # a datetime in its header
    kind, parts = relay.sent[-1]
    assert kind == CONTROL and json.loads(parts[3])["msg_type"] == "interrupt_request"
    assert parts[2] == sign(parts[3:7])


async def test_a_reply_without_identities_is_taken():
    """Deno's kernel answers without the request's identities: such a reply is the client's."""
    client, _ = direct()
    assert client.deliver(SHELL, message("kernel_info_reply", {"status": "ok"}, n=1)) is True
    assert (await client.get_shell_msg(timeout=1))["msg_type"] == "kernel_info_reply"


async def test_replies_are_routed_by_identity_and_iopub_goes_to_everyone():
    client, relay = direct()
    other = DirectKernelClient(relay)  # type: ignore[arg-type]
    reply = [client.identity, *message("execute_reply", {"status": "ok"}, n=1)]
    assert client.deliver(SHELL, reply) is True
    assert other.deliver(SHELL, reply) is False
    assert client.deliver(IOPUB, [b"topic", *message("status", {"execution_state": "idle"}, n=2)]) is False
    assert other.deliver(IOPUB, [b"topic", *message("status", {"execution_state": "idle"}, n=2)]) is False
    got = await client.get_shell_msg(timeout=1)
    assert got["msg_type"] == "execute_reply" and got["content"] == {"status": "ok"}
    assert got["parent_header"] == {"msg_id": "p1"} and got["header"]["date"] == "2026-01-01T00:00:00Z"
    assert got["buffers"] == [] and got["metadata"] == {}
    assert (await client.get_iopub_msg(timeout=1))["content"] == {"execution_state": "idle"}
    assert (await other.get_iopub_msg(timeout=1))["content"] == {"execution_state": "idle"}
    with pytest.raises(queue.Empty):
        await other.get_shell_msg(timeout=0)


async def test_get_waits_for_a_message_and_times_out_empty():
    client, _ = direct()
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        await client.get_iopub_msg(timeout=0.2)
    assert 0.15 < time.monotonic() - started < 1.0
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, client.deliver, IOPUB, [b"t", *message("stream", {"text": "x"})])
    assert (await client.get_iopub_msg(timeout=5))["msg_type"] == "stream"


async def test_a_bad_forged_or_replayed_message_is_refused_as_jupyter_client_does():
    client, _ = direct()
    good = [b"t", *message("stream", {"text": "x"})]
    forged = [b"t", DELIMITER, b"0" * 64, *good[3:]]
    for parts, error in [
        (forged, "Invalid Signature"),
        ([b"t", b"garbage"], "not in list"),
        (good, None),
        (good, "Duplicate Signature"),
        ([b"t", DELIMITER, b"", *good[3:]], "Unsigned Message"),
    ]:
        client.deliver(IOPUB, parts)
        if error is None:
            assert (await client.get_iopub_msg(timeout=0))["content"] == {"text": "x"}
        else:
            with pytest.raises(ValueError, match=error):
                await client.get_iopub_msg(timeout=0)


async def test_iopub_over_its_bound_holds_the_relay_until_read():
    client, relay = direct(max_iopub_bytes=10_000)
    chunk = [b"t", *message("stream", {"text": "x" * 3000})]
    for n in range(5):
        assert not client.holding or n >= 4
        client.deliver(IOPUB, [b"t", *message("stream", {"text": "x" * 3000}, n=n)])
    assert client.holding
    assert relay.resumed == 0
    while client.holding:
        await client.get_iopub_msg(timeout=0)
    assert relay.resumed == 1, "read down to half its bound: the relay reads on"
    assert sum(len(p) for p in chunk) * 2 >= client._iopub.nbytes


async def test_a_reader_waiting_for_a_reply_gets_unread_iopub_dropped():
    client, relay = direct(max_iopub_bytes=10_000)
    for n in range(5):
        client.deliver(IOPUB, [b"t", *message("stream", {"text": "x" * 3000}, n=n)])
    assert client.holding
    with pytest.raises(queue.Empty):
        await client.get_shell_msg(timeout=0.01)
    assert not client.holding and relay.resumed == 1 and client.dropped >= 3


async def test_closed_iopub_and_stopped_clients_keep_nothing():
    client, relay = direct(max_iopub_bytes=10_000)
    for n in range(5):
        client.deliver(IOPUB, [b"t", *message("stream", {"text": "x" * 3000}, n=n)])
    assert client.holding
    client.iopub_channel.close()
    assert not client.holding and relay.resumed == 1
    client.deliver(IOPUB, [b"t", *message("stream", {"text": "x"}, n=9)])
    with pytest.raises(queue.Empty):
        await client.get_iopub_msg(timeout=0)
    waiting = asyncio.ensure_future(client.get_shell_msg(timeout=None))
    await asyncio.sleep(0)
    client.stop_channels()
    with pytest.raises(queue.Empty):
        await asyncio.wait_for(waiting, 1)
    assert client not in relay.direct_clients


# -- a real kernel behind a relay ------------------------------------------------------------
@pytest.fixture
async def kernel(tmp_path):
    k = await start_kernel(LocalPlace(str(tmp_path)))
    try:
        yield k
    finally:
        await shutdown(k)


async def test_the_direct_client_alone_hears_iopub(tmp_path):
    """No ZMQ client subscribed: the direct client subscribes the sandbox's iopub itself."""
    place = LocalPlace(str(tmp_path))
    kernel_id, key, socket_dir = uuid.uuid4().hex, secrets.token_hex(32), short_dir()
    stream = await place.open("start")
    relay = KernelRelay(stream.reader, stream.writer, socket_dir, kernel_id, key)
    k = Kernel(place, kernel_id, key, socket_dir, stream, relay)
    try:
        await relay.start(start_request(kernel_id, key, k.argv, state_dir=place.state_dir))
        await relay.wait_ready(timeout=60)
        client = DirectKernelClient(relay)
        await wait_ready(client)
        execution = await run_execute(client, "print('alone')\n6*7", timeout=30)
        assert execution.results[0].text == "42" and execution.logs.stdout == ["alone\n"]
        client.stop_channels()
    finally:
        await shutdown(k)


async def wait_ready(client: KernelClient) -> None:
    msg_id = client.kernel_info()
    while True:
        reply = await client.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            return


async def test_the_collector_runs_code_on_the_direct_client_beside_a_zmq_client(kernel):
    client = DirectKernelClient(kernel.relay)
    try:
        await wait_ready(client)
        events: list[dict[str, Any]] = []
        execution = await run_execute(client, "print('hi')\n1+1", on_event=events.append, timeout=30)
        assert execution.results[0].text == "2" and execution.logs.stdout == ["hi\n"]
        assert events[-1] == {"type": "end_of_execution"}
        # jupyter_client's client over ZMQ still works, and its reply is its own
        zmq_reply = await kernel.client.execute_interactive("40+2", timeout=30)
        assert zmq_reply["content"]["status"] == "ok"
        with pytest.raises(queue.Empty):
            await client.get_shell_msg(timeout=0.3)  # that reply was not ours
    finally:
        client.stop_channels()


async def test_input_and_interrupt_on_the_direct_client(kernel):
    client = DirectKernelClient(kernel.relay)
    try:
        await wait_ready(client)
        msg_id = client.execute("x = input('? ')\nx * 2", allow_stdin=True)
        request = await client.get_stdin_msg(timeout=30)
        assert request["msg_type"] == "input_request" and request["parent_header"]["msg_id"] == msg_id
        client.input("ab")
        while (reply := await client.get_shell_msg(timeout=30))["parent_header"]["msg_id"] != msg_id:
            pass
        assert reply["content"]["status"] == "ok"
        msg_id = client.execute("import time; time.sleep(60)")
        await asyncio.sleep(1)
        client.control_channel.send(client.session.msg("interrupt_request", {}))
        while (reply := await client.get_shell_msg(timeout=30))["parent_header"]["msg_id"] != msg_id:
            pass
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        client.stop_channels()


async def test_a_big_output_waits_in_the_sandbox_while_the_client_does_not_read(kernel):
    bound = 256 * 1024
    client = DirectKernelClient(kernel.relay, max_iopub_bytes=bound)
    try:
        await wait_ready(client)
        while True:  # the status messages of kernel_info
            try:
                await client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                break
        code = "import sys\nfor _ in range(400):\n    print('x' * 9999, flush=True)\n"  # 4 MB
        msg_id = client.execute(code)
        await asyncio.sleep(3)  # nobody reads iopub
        queued = client._iopub.nbytes
        assert client.holding and queued < bound + 64 * 1024, queued
        text = 0
        while True:
            msg = await client.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += len(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert text == 400 * 10_000, "nothing lost"
        assert client.dropped == 0
    finally:
        client.stop_channels()


# -- the collector, now that a reply can be read before the iopub messages sent before it -------
def kernel_msg(msg_type: str, content: dict[str, Any], parent: str = "x1") -> dict[str, Any]:
    return {"header": {"msg_type": msg_type}, "parent_header": {"msg_id": parent}, "content": content}


ERROR = {"status": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": ["tb"]}


def test_a_reply_read_before_the_iopub_error_gives_one_error():
    collector = ExecutionCollector("x1")
    events = collector.handle_iopub(kernel_msg("status", {"execution_state": "busy"}))
    events += collector.handle_reply(kernel_msg("execute_reply", {**ERROR, "execution_count": 1}))
    events += collector.handle_iopub(kernel_msg("error", {k: v for k, v in ERROR.items() if k != "status"}))
    events += collector.handle_iopub(kernel_msg("status", {"execution_state": "idle"}))
    assert [e["type"] for e in events] == ["number_of_executions", "error"]
    assert collector.done and collector.execution.error.name == "ZeroDivisionError"


def test_without_an_iopub_error_the_replys_error_counts():
    collector = ExecutionCollector("x1")
    events = collector.handle_reply(kernel_msg("execute_reply", ERROR))
    events += collector.handle_iopub(kernel_msg("status", {"execution_state": "idle"}))
    assert [e["type"] for e in events] == ["error"] and collector.done


async def test_replies_nobody_reads_are_bounded_in_bytes():
    """The kernel knows the client's identity: replies it sends unasked pile up to a bound, the
    oldest going first, and the newest is still there to read."""
    client, _ = direct()
    big = "x" * (1 << 20)
    for n in range(10):
        assert client.deliver(SHELL, [client.identity, *message("execute_reply", {"junk": big}, n=n)])
    assert client._shell.nbytes <= MAX_REPLY_BYTES and client.dropped >= 5
    last = [client.identity, *message("execute_reply", {"status": "ok"}, parent="mine", n=99)]
    client.deliver(SHELL, last)
    while (reply := await client.get_shell_msg(timeout=0))["parent_header"] != {"msg_id": "mine"}:
        pass
    assert reply["content"] == {"status": "ok"}
