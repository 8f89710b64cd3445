"""Commands of a Docker sandbox (the process service): one ``docker exec`` each, read on the event loop.

A command runs under programs/process.py in a root exec: it takes the sandbox's user, leads its own
session, and writes its pid inside the sandbox as the first line of stdout before it becomes the
command. The exec's socket is then read without a thread (non-blocking, on the event loop): an
idle background process costs a socket, not one of the engine's stream threads. Signals go to the
process group by that pid, from a short exec as the sandbox's user; a terminal is resized by the
engine (``exec_resize``). The sandbox's env reaches the command only after the privileges are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
import socket
import struct
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, InvalidInput
from . import programs
from .base import WORKDIR
from .docker_containers import IDENTITY_ENV
from .docker_engine import EngineClient, exit_code, hang_up, raw_socket
from .exec_stream import ExecConfig, ExecStream, ExecTable

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend

NO_CWD = 72  # programs/process.py: the working directory does not exist
KILL_GROUP = "import os, sys; os.killpg(int(sys.argv[1]), int(sys.argv[2]))"
STREAMS = {1: "stdout", 2: "stderr"}


def command_workdir(cwd: str | None) -> str:
    """A command's working directory: any absolute path in the container; a relative one is
    taken from the sandbox's working directory."""
    if cwd and "\x00" in cwd:
        raise InvalidInput("cwd must not contain NUL bytes", field="cwd")
    return posixpath.normpath(posixpath.join(WORKDIR, cwd or "."))


class ExecSocket:
    """An exec's attached socket, read on the event loop: ``(kind, bytes)`` chunks, ("", b"") at its end.
    Without a terminal the engine frames each chunk (8 bytes: stream, 0, 0, 0, length); with one the
    bytes are the terminal's, unframed."""

    def __init__(self, sock: Any, tty: bool) -> None:
        self.sock = sock  # docker-py's wrapper: holding it keeps the socket open
        self.raw: socket.socket = raw_socket(sock)
        self.raw.setblocking(False)
        self.tty = tty
        self._buffer = bytearray()

    async def _recv(self) -> bytes:
        try:
            return await asyncio.get_running_loop().sock_recv(self.raw, 65536)
        except OSError:
            return b""

    async def _exactly(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            data = await self._recv()
            if not data:
                return None
            self._buffer += data
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def read(self) -> tuple[str, bytes]:
        if self.tty:
            data = bytes(self._buffer) or await self._recv()
            self._buffer.clear()
            return ("pty", data) if data else ("", b"")
        while True:
            header = await self._exactly(8)
            if header is None:
                return "", b""
            kind, length = header[0], struct.unpack(">I", header[4:])[0]
            body = await self._exactly(length)
            if body is None:
                return "", b""
            if kind in STREAMS:
                return STREAMS[kind], body

    def unread(self, data: bytes) -> None:
        """Put bytes back (a terminal's, after the pid line)."""
        self._buffer[:0] = data

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.raw, data)

    def shut_input(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        hang_up(self.sock)


class DockerExecStream(ExecStream):
    def __init__(
        self, pid: int, config: ExecConfig, processes: DockerProcesses, sandbox_id: str, exec_id: str, io: ExecSocket
    ) -> None:
        super().__init__(pid, config)
        self._processes = processes
        self._sandbox_id = sandbox_id
        self._exec_id = exec_id
        self._io = io
        self._signalled: int | None = None
        self._reader: asyncio.Task[None] | None = None

    def start_reading(self, early: list[tuple[str, bytes]]) -> None:
        for kind, data in early:
            self._publish(kind, data)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        code: int | None = None
        try:
            while True:
                kind, data = await self._io.read()
                if not kind:
                    break
                self._publish(kind, data)
            engine = self._processes.backend.engine
            code = await engine.call(lambda c: exit_code(c, self._exec_id))
        except Exception as e:  # the container is gone: no exit code to be had
            self._processes.backend.log.debug("process %s of %s: %s", self.pid, self._sandbox_id, e)
        finally:
            self._io.close()
            if code is not None and self._signalled and code == 128 + self._signalled:
                code = -self._signalled  # killed by the signal sent (the engine says 128 + n)
            self._finish(code)

    async def _write(self, data: bytes) -> None:
        await self._io.send(data)

    async def _close_stdin(self) -> None:
        self._io.shut_input()

    async def _resize(self, rows: int, cols: int) -> None:
        await self._processes.backend.engine.call(lambda c: c.api.exec_resize(self._exec_id, height=rows, width=cols))

    async def _signal(self, signum: int) -> None:
        self._signalled = signum
        await self._processes.kill_group(self._sandbox_id, self.pid, signum)

    async def close(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                await self._signal(9)
        self._io.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class DockerProcesses:
    """The commands running in one backend's sandboxes."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend
        self.table = ExecTable()

    async def start(
        self,
        sandbox_id: str,
        argv: list[str],
        cwd: str | None,
        env: dict[str, str],
        pty: tuple[int, int] | None,
        stdin: bool,
        tag: str | None,
    ) -> ExecStream:
        if not argv or not argv[0]:
            raise InvalidInput("a command is needed", field="cmd")
        backend = self.backend
        cid = backend.container_id(sandbox_id)
        self.table.check_room(sandbox_id, backend.max_commands)
        spec = backend.spec_if_known(sandbox_id)
        workdir = command_workdir(cwd)
        full_env = {"HOME": WORKDIR, **IDENTITY_ENV, **(spec.env if spec else {}), **env}
        if pty:
            full_env.setdefault("TERM", "xterm-256color")
        uid, _, gid = backend.containers.ids(sandbox_id)[0].partition(":")
        rows, cols = pty or (0, 0)
        command = [backend.python, "-I", "-c", programs.source("process"), uid, gid, workdir, json.dumps(full_env)]
        command += [str(rows), str(cols), *argv]
        tty = pty is not None

        def begin(c: EngineClient) -> tuple[str, Any]:
            exec_id = c.api.exec_create(cid, command, user="0:0", stdin=stdin or tty, tty=tty)["Id"]
            return exec_id, c.api.exec_start(exec_id, socket=True, tty=tty)

        exec_id, sock = await backend.engine.call(begin)
        io = ExecSocket(sock, tty)
        try:
            pid, early = await asyncio.wait_for(self._pid_line(io), backend.engine_timeout)
        except asyncio.TimeoutError:
            io.close()
            raise BackendUnavailable(f"the sandbox did not start the command in {backend.engine_timeout:g} s") from None
        if pid is None:
            io.close()
            code = await backend.engine.call(lambda c: exit_code(c, exec_id))
            said = b"".join(data for _, data in early).decode(errors="replace").strip()[-500:]
            if code == NO_CWD:
                raise InvalidInput(f"the working directory {workdir} does not exist in the sandbox", field="cwd")
            raise BackendUnavailable(f"the sandbox could not start the command (exit code {code}): {said}")
        config = ExecConfig(list(argv), workdir, dict(env), tag, pty, stdin)
        stream = DockerExecStream(pid, config, self, sandbox_id, exec_id, io)
        stream.start_reading(early)
        self.table.add(sandbox_id, stream)
        return stream

    async def _pid_line(self, io: ExecSocket) -> tuple[int | None, list[tuple[str, bytes]]]:
        """The pid programs/process.py writes first, and what came after it (or, without a pid, all it said)."""
        line = bytearray()
        early: list[tuple[str, bytes]] = []
        while True:
            kind, data = await io.read()
            if not kind:
                return None, early
            if kind == "stderr":
                early.append((kind, data))
                continue
            line += data
            if b"\n" in line:
                first, _, rest = bytes(line).partition(b"\n")
                if io.tty and rest:
                    io.unread(rest)  # the terminal's bytes: read again as the process's
                elif rest:
                    early.append((kind, rest))
                return int(first.strip()), early

    async def kill_group(self, sandbox_id: str, pid: int, signum: int) -> None:
        """Send ``signum`` to process group ``pid`` in the sandbox, as its user (it may only signal its own)."""
        command = [self.backend.python, "-I", "-c", KILL_GROUP, str(pid), str(signum)]
        await self.backend.files.run_as_user(sandbox_id, command)
