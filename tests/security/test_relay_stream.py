"""The host relay takes a hostile byte stream (issue 27): what the sandbox writes into its link is
fed to KernelRelay by a local subprocess, as code that can write into the link would write it.

- a flood of empty control frames and forged events with newlines: the relay reads them at its
  budget, the event loop stays free, the log gets a bounded number of lines and none is forged;
- an unfinished giant frame: not held in memory, and the stream is closed after partial_timeout;
- a giant frame sent whole: skipped as it streams past, and what follows still arrives;
- oversized signed messages: cut down and signed again on the host; a bad signature stays bad.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from jupyter_sandbox.backends.kernel_relay import (
    KernelRelay,
    _LauncherProcessProtocol,
)
from jupyter_sandbox.backends.programs.frames import DROPPED, IOPUB, LAUNCHER, OUTPUT_CAP, FrameDecoder, Skipped, encode

pytestmark = pytest.mark.timeout(120)
KEY = "k" * 64
FRAMES = """
import struct, sys
def frame(kind, parts):
    return struct.pack(">BI", kind, len(parts)) + b"".join(struct.pack(">I", len(p)) + p for p in parts)
out = sys.stdout.buffer
out.write(frame(255, [b'{"event": "started", "pid": 7}']))
out.flush()
"""


def wire(messages: list[tuple[int, list[bytes]]]) -> bytes:
    out: list[bytes] = []
    for kind, parts in messages:
        encode(kind, parts, out)
    return b"".join(out)


async def hostile(script: str):
    """A subprocess writing ``script``'s frames; its streams as the backends make them (the
    transport hands each chunk to the relay)."""
    argv = [sys.executable, "-c", FRAMES + script]
    pipe = asyncio.subprocess.PIPE
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _LauncherProcessProtocol(lambda data: None), *argv, stdin=pipe, stdout=pipe, stderr=pipe
    )
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    return proc, proc.stdout, proc.stdin


class Relay:
    def __init__(self, script: str, **options):
        self.script, self.options = script, options

    async def __aenter__(self) -> KernelRelay:
        self.dir = tempfile.mkdtemp(prefix="jsbx-h-")
        self.proc, reader, writer = await hostile(self.script)
        self.relay = KernelRelay(reader, writer, self.dir, "k1", KEY, **self.options)
        await self.relay.start()
        await self.relay.wait_ready(timeout=30)
        return self.relay

    async def __aexit__(self, *exc) -> None:
        await self.relay.close()
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


async def loop_lag(seconds: float) -> float:
    """The longest the event loop was away while ticking every 20 ms for ``seconds``."""
    worst, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        before = time.monotonic()
        await asyncio.sleep(0.02)
        worst = max(worst, time.monotonic() - before - 0.02)
    return worst


async def test_a_flood_of_control_frames_and_forged_log_lines_is_read_at_the_relays_pace(caplog):
    # 1,000 empty control frames then a forged event with a newline, over and over, as fast as it can
    script = """
evil = frame(255, [b'{"event": "x\\\\nFORGED root logged in\\\\r\\\\u001b[2J"}'])
chunk = (frame(255, []) * 1000 + evil) * 50
while True:
    out.write(chunk)
"""
    caplog.set_level(logging.INFO, logger="jupyter_sandbox")
    async with Relay(script) as relay:
        started = relay._decoder.consumed
        lag = await loop_lag(4.0)
        read = relay._decoder.consumed - started
        assert not relay.exited.done(), relay.exited.result()  # it costs its owner's link, not more
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("jupyter_sandbox")]
    assert lag < 0.5, f"the event loop was held for {lag:.2f} s"
    # events are read at 20 per second (a burst of 80): the attack wrote 1.09 million in 8 s
    assert read < 5 * 1000, f"{read} bytes of control frames read in 4 s"
    assert 1 <= len(lines) <= 25, lines[:30]
    for line in lines:
        assert "\n" not in line and "\r" not in line and "\x1b" not in line, line
    assert any("FORGED" in line for line in lines) or any("unreadable" in line for line in lines), lines


async def test_an_unfinished_giant_frame_is_not_held_and_ends_its_stream_in_time():
    # an iopub message announcing 63 MiB: 1 MiB of it, then a byte now and then (never quiet)
    script = """
import time
out.write(struct.pack(">BII", 1, 1, 63 << 20) + b"x" * (1 << 20))
out.flush()
while True:
    time.sleep(0.2)
    out.write(b"x")
    out.flush()
"""
    async with Relay(script, partial_timeout=3.0, liveness_timeout=6.0) as relay:
        held, started = 0, time.monotonic()
        while not relay.exited.done() and time.monotonic() - started < 30:
            held = max(held, len(relay._decoder._buf))
            await asyncio.sleep(0.05)
        info = await asyncio.wait_for(asyncio.shield(relay.exited), 1)
    assert held < 1 << 20, f"{held} bytes of the unfinished frame were held"
    assert info["reason"] == "stream closed" and "unfinished" in info["error"], info
    assert time.monotonic() - started < 15


def signed(session: Session, msg_type: str, content: dict, topic: bytes = b"kernel.k1.x") -> list[bytes]:
    msg = session.msg(msg_type, content, parent={"msg_id": "p1"})
    return [topic, *session.serialize(msg)]


async def test_oversized_messages_are_cut_on_the_host_and_signed_again():
    session = Session(key=KEY.encode())
    bad = signed(session, "stream", {"name": "stdout", "text": "w" * (11 << 20)})
    bad[2] = b"0" * 64  # a signature that does not hold
    messages = [
        signed(session, "stream", {"name": "stdout", "text": "y" * (30 << 20)}),  # skipped as it streams past
        signed(session, "display_data", {"data": {"text/plain": "z" * (9 << 20)}, "metadata": {}}),  # held, cut
        signed(session, "error", {"ename": "ValueError", "evalue": "E" * (9 << 20), "traceback": ["tb"]}),
        bad,  # skipped: its signature is checked as it streams past
        [b"kernel.k1.x", b"no delimiter", b"x" * (12 << 20)],  # dropped
        signed(session, "stream", {"name": "stdout", "text": "after"}),
    ]
    stream_size = len(messages[0][-1])
    path = tempfile.mktemp(prefix="jsbx-frames-")
    with open(path, "wb") as f:
        f.write(wire([(IOPUB, parts) for parts in messages]))
    del messages, bad
    script = f"""
import shutil, time
sys.stdin.buffer.read(1)  # the host subscribed
with open({path!r}, "rb") as f:
    shutil.copyfileobj(f, out)
out.flush()
time.sleep(60)
"""
    ctx = zmq.asyncio.Context.instance()
    try:
        async with Relay(script, bytes_per_second=256 << 20) as relay:
            sub = ctx.socket(zmq.SUB)
            sub.linger = 0
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(f"ipc://{relay.ip}-2")
            try:
                got = [await asyncio.wait_for(sub.recv_multipart(), 30) for _ in range(5)]
            finally:
                sub.close()
    finally:
        os.unlink(path)
    for parts in got:
        assert sum(len(p) for p in parts) <= OUTPUT_CAP
    stream = session.deserialize(session.feed_identities(got[0])[1])
    assert stream["content"] == {
        "name": "stderr",
        "text": f"[jupyter-sandbox: {stream_size} bytes of output were dropped on the server]\n",
    }
    assert stream["metadata"] == {DROPPED: stream_size}
    display = session.deserialize(session.feed_identities(got[1])[1])
    assert "dropped on the server" in display["content"]["data"]["text/plain"]
    error = session.deserialize(session.feed_identities(got[2])[1])
    assert error["content"]["ename"] == "ValueError" and len(error["content"]["evalue"]) == 4096
    with pytest.raises(ValueError, match="Signature"):
        session.deserialize(session.feed_identities(got[3])[1])
    after = session.deserialize(session.feed_identities(got[4])[1])
    assert after["content"]["text"] == "after"


def test_a_part_over_the_cap_is_never_buffered_and_its_signature_is_checked():
    session = Session(key=KEY.encode())
    for tamper in (False, True):
        parts = signed(session, "stream", {"name": "stdout", "text": "q" * (40 << 20)})
        if tamper:
            parts[2] = b"0" * 64
        data = wire([(IOPUB, parts), (LAUNCHER, [b"{}"])])
        decoder = FrameDecoder(1 << 20, KEY.encode())
        got, held = [], 0
        for i in range(0, len(data), 1 << 16):
            got += decoder.feed(data[i : i + (1 << 16)])
            held = max(held, len(decoder._buf))
        assert held < 1 << 17
        (kind, message), event = got
        assert kind == IOPUB and event == (LAUNCHER, [b"{}"])
        assert message[:6] == parts[:6] and isinstance(message[6], Skipped)
        assert message[6].size == len(parts[6]) and message[6].valid is (not tamper)
