"""``pods/exec`` over a websocket, as the byte streams the kernel relay and the file commands use.

The API server multiplexes an exec's streams on one websocket: each binary message starts with its
channel's number (0 stdin, 1 stdout, 2 stderr, 3 error: the exec's final Status, 4 resize). With
``v5.channel.k8s.io`` the client can also close its stdin (a message ``255, 0``); ``v4.channel.k8s.io``
cannot, so there the end of stdin is said by the command's own protocol (the launcher's first line
and frames; the files program's length prefix). v5 is asked for first, v4 accepted.

A program of ours (the launcher, the files program: tens of kilobytes) is not put in the exec's
URL, whose length API servers cap, but sent first on its stdin: the command is a short bootstrap
(``BOOT``) that reads the program's source, exactly its length, then runs it; what follows on stdin
is the program's own (``program``).

``open_exec`` gives an ``ExecStream`` (kernel_relay.py's): stdout as a ``PushStreamReader`` whose
transport pauses reading the websocket (the relay's backpressure), stdin as a writer with a bounded
send queue, and ``wait()`` for the exit code from the Status on the error channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohttp

from ..errors import BackendUnavailable
from .kernel_relay import ExecStream, PushStreamReader, _StderrLog

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
CHUNK = 256 * 1024  # bytes of stdin per websocket message
# argv: BOOT's length in bytes, then the program's own arguments (sys.argv as if run with -c)
BOOT = (
    "import os, sys\n"
    "n, b = int(sys.argv[1]), bytearray()\n"
    "while len(b) < n:\n"
    "    c = os.read(0, n - len(b))\n"
    "    if not c: sys.exit(70)\n"
    "    b += c\n"
    "del sys.argv[1]\n"
    "exec(compile(bytes(b), 'program', 'exec'), {'__name__': '__main__'})\n"
)


def program(python: str, source: str, *args: str) -> tuple[list[str], bytes]:
    """The command that runs ``source`` (Python, given on stdin) with ``args``, and what to send first."""
    code = source.encode()
    return [python, "-I", "-c", BOOT, str(len(code)), *args], code


def exit_code(status: dict[str, Any] | None) -> int | None:
    """The exit code an exec's final Status says (None when it said nothing: the pod went away).
    ``Success`` is 0; a failure names it in ``details.causes`` as reason ``ExitCode``."""
    if not status:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None


# a connection: (url, auth headers) -> the websocket, with one of PROTOCOLS
Connect = Callable[[list[str], bool], Awaitable[aiohttp.ClientWebSocketResponse]]


class ExecTransport:
    """The websocket of one exec, as the transport and writer a relay drives (``write``, ``drain``,
    ``pause_reading``...). Stdin goes out in order by one task; stdout and stderr come in by another."""

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, reader: PushStreamReader, on_stderr: Callable[[bytes], None]
    ) -> None:
        self.ws = ws
        self.v5 = ws.protocol == PROTOCOLS[0]
        self.transport = self  # StreamWriter's attribute: the relay asks it for the buffer size
        self._reader = reader
        self._on_stderr = on_stderr
        self._out: deque[bytes] = deque()
        self._out_size = 0
        self._wrote = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._closing = False
        self._stdin_closed = False
        self.status: dict[str, Any] | None = None
        self.ended = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._receive()),
            asyncio.ensure_future(self._send()),
        ]

    # -- the transport's side (the relay's reader pauses and resumes it) -------------------
    def is_closing(self) -> bool:
        return self._closing or self.ws.closed

    def pause_reading(self) -> None:
        self._flowing.clear()

    def resume_reading(self) -> None:
        self._flowing.set()

    def get_write_buffer_size(self) -> int:
        return self._out_size

    # -- the writer's side --------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.is_closing() or not data:
            return
        for i in range(0, len(data), CHUNK):
            self._out.append(data[i : i + CHUNK])
        self._out_size += len(data)
        self._drained.clear()
        self._wrote.set()

    def write_eof(self) -> None:
        """No more stdin (said on v5; on v4 the stream stays open until ``close``)."""
        self._stdin_closed = True
        self._wrote.set()

    async def drain(self) -> None:
        await self._drained.wait()
        if self.ws.closed:
            raise ConnectionResetError("the exec's websocket closed")

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._flowing.set()
        self._wrote.set()
        self._tasks.append(asyncio.ensure_future(self.ws.close()))

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the tasks ----------------------------------------------------------------------
    async def _send(self) -> None:
        try:
            while not self._closing:
                await self._wrote.wait()
                self._wrote.clear()
                while self._out and not self.ws.closed:
                    chunk = self._out.popleft()
                    await self.ws.send_bytes(bytes([STDIN]) + chunk)
                    self._out_size -= len(chunk)
                if not self._out:
                    self._drained.set()
                if self._stdin_closed:
                    if self.v5 and not self.ws.closed:
                        await self.ws.send_bytes(bytes([CLOSE, STDIN]))
                    return
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as e:
            log.debug("exec stdin: %s", e)
        finally:
            self._out.clear()
            self._out_size = 0
            self._drained.set()

    async def _receive(self) -> None:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.BINARY or not message.data:
                    continue
                channel, data = message.data[0], message.data[1:]
                if not data:
                    continue  # a channel's opening message
                if channel == STDOUT:
                    await self._flowing.wait()
                    self._reader.feed_data(data)
                elif channel == STDERR:
                    self._on_stderr(data)
                elif channel == ERROR:
                    with contextlib.suppress(ValueError):
                        self.status = json.loads(data)
        except (ConnectionError, aiohttp.ClientError) as e:
            log.debug("exec stdout: %s", e)
        finally:
            self._closing = True
            self._wrote.set()
            self._reader.feed_eof()
            if not self.ended.done():
                self.ended.set_result(exit_code(self.status))
            with contextlib.suppress(Exception):
                await self.ws.close()


async def open_exec(connect: Connect, command: tuple[list[str], bytes], name: str) -> ExecStream:
    """Run ``command`` (``program``'s) in the pod through ``connect`` (a websocket to its pods/exec); its streams."""
    argv, prefix = command
    ws = await connect(argv, True)
    reader = PushStreamReader(limit=1 << 18)
    stderr = _StderrLog(name)
    transport = ExecTransport(ws, reader, stderr.feed)
    reader.set_transport(cast(asyncio.BaseTransport, transport))
    transport.write(prefix)

    async def wait() -> int | None:
        code: int | None = await asyncio.shield(transport.ended)
        stderr.close()
        return code

    return ExecStream(reader, cast(asyncio.StreamWriter, transport), wait)


async def run_exec(
    connect: Connect, command: tuple[list[str], bytes], data: bytes = b"", *, limit: int, timeout: float
) -> tuple[int | None, bytes, bytes]:
    """A short command's (``program``'s, or argv and b"") exit code, stdout and stderr (each at most
    ``limit`` bytes, else BackendUnavailable), ``data`` its stdin after the program. Hung up after ``timeout`` s."""
    argv, prefix = command
    data = prefix + data
    ws = await connect(argv, bool(data))
    out, err = bytearray(), bytearray()
    status: dict[str, Any] | None = None
    v5 = ws.protocol == PROTOCOLS[0]

    async def talk() -> None:
        nonlocal status
        if data:
            for i in range(0, len(data), CHUNK):
                await ws.send_bytes(bytes([STDIN]) + data[i : i + CHUNK])
            if v5:
                await ws.send_bytes(bytes([CLOSE, STDIN]))
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY or len(message.data) < 2:
                continue
            channel, chunk = message.data[0], message.data[1:]
            if channel in (STDOUT, STDERR):
                buffer = out if channel == STDOUT else err
                if len(buffer) + len(chunk) > limit:
                    raise BackendUnavailable(f"the answer from the sandbox is over {limit} bytes")
                buffer += chunk
            elif channel == ERROR:
                with contextlib.suppress(ValueError):
                    status = json.loads(chunk)

    try:
        await asyncio.wait_for(talk(), timeout)
    except asyncio.TimeoutError:
        raise BackendUnavailable(f"the sandbox did not answer in {timeout:g} s") from None
    except (ConnectionError, aiohttp.ClientError) as e:
        raise BackendUnavailable(f"the exec in the sandbox's pod failed: {e}") from None
    finally:
        await ws.close()
    return exit_code(status), bytes(out), bytes(err)
