"""Commands of a Kubernetes sandbox (the process service): one ``pods/exec`` websocket each.

A command runs under programs/process.py, as on Docker, but the exec is the sandbox's user already
(a "restricted" pod cannot change users), so the program only leads its own session, enters the
working directory and writes its pid as the first line of stdout before it becomes the command.
Signals go to the process group by that pid, from a short exec. Closing stdin needs the
``v5.channel.k8s.io`` protocol (its close message); a cluster that serves only v4 cannot say it,
so there ``close_stdin`` is refused (503). A PTY is an exec with ``tty=true``: its output comes on
stdout alone, and a resize is a message on the resize channel (4). A process ends with its pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import aiohttp

from ..errors import BackendUnavailable, InvalidInput
from . import programs
from .base import WORKDIR
from .docker_containers import IDENTITY_ENV
from .docker_exec import KILL_GROUP, NO_CWD, command_workdir
from .exec_stream import ExecConfig, ExecStream, ExecTable
from .kubernetes_exec import CLOSE, ERROR, PROTOCOLS, RESIZE, STDERR, STDIN, STDOUT, exit_code

if TYPE_CHECKING:  # (only for types: kubernetes.py imports this module)
    from .kubernetes import KubernetesBackend

STREAMS = {STDOUT: "stdout", STDERR: "stderr"}


class PodExecSocket:
    """An exec's websocket as ``(kind, bytes)`` chunks, ("", b"") at its end; the final Status kept.
    With a terminal (``tty``) all output comes on stdout, and is the terminal's ("pty")."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, tty: bool = False) -> None:
        self.ws = ws
        self.tty = tty
        self.v5 = ws.protocol == PROTOCOLS[0]
        self.status: dict[str, Any] | None = None

    async def read(self) -> tuple[str, bytes]:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.BINARY or len(message.data) < 2:
                    continue  # (a channel's opening message is empty)
                channel, data = message.data[0], message.data[1:]
                if channel in STREAMS:
                    return "pty" if self.tty else STREAMS[channel], bytes(data)
                if channel == ERROR:
                    with contextlib.suppress(ValueError):
                        self.status = json.loads(data)
        except (ConnectionError, aiohttp.ClientError):
            pass
        return "", b""

    async def send(self, channel: int, data: bytes) -> None:
        try:
            await self.ws.send_bytes(bytes([channel]) + data)
        except (ConnectionError, RuntimeError) as e:
            raise BackendUnavailable(f"the command's stream is closed: {e}") from None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


class KubernetesExecStream(ExecStream):
    def __init__(
        self, pid: int, config: ExecConfig, processes: KubernetesProcesses, sandbox_id: str, io: PodExecSocket
    ) -> None:
        super().__init__(pid, config)
        self._processes = processes
        self._sandbox_id = sandbox_id
        self._io = io
        self._signalled: int | None = None
        self._reader: asyncio.Task[None] | None = None

    def start_reading(self, early: list[tuple[str, bytes]]) -> None:
        for kind, data in early:
            self._publish(kind, data)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                kind, data = await self._io.read()
                if not kind:
                    break
                self._publish(kind, data)
        finally:
            await self._io.close()
            code = exit_code(self._io.status)  # None when the pod went away without a Status
            if code is not None and self._signalled and code == 128 + self._signalled:
                code = -self._signalled  # killed by the signal sent (the exec says 128 + n)
            self._finish(code)

    async def _write(self, data: bytes) -> None:
        await self._io.send(STDIN, data)

    async def _close_stdin(self) -> None:
        if not self._io.v5:
            raise BackendUnavailable(
                "closing a command's stdin needs the v5.channel.k8s.io exec protocol, which this cluster does not serve"
            )
        await self._io.send(CLOSE, bytes([STDIN]))

    async def _resize(self, rows: int, cols: int) -> None:
        # the resize channel's message: a TerminalSize as JSON (both protocols have the channel)
        await self._io.send(RESIZE, json.dumps({"Width": cols, "Height": rows}).encode())

    async def _signal(self, signum: int) -> None:
        self._signalled = signum
        await self._processes.kill_group(self._sandbox_id, self.pid, signum)

    async def close(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                await self._signal(9)
        await self._io.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class KubernetesProcesses:
    """The commands running in one backend's sandboxes."""

    def __init__(self, backend: KubernetesBackend) -> None:
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
        connect = backend.exec_connect(sandbox_id, tty=pty is not None)
        self.table.check_room(sandbox_id, backend.max_commands)
        workdir = command_workdir(cwd)
        spec = backend.spec_if_known(sandbox_id)
        full_env = {"HOME": WORKDIR, **IDENTITY_ENV, **(spec.env if spec else {}), **env}
        if pty:
            full_env.setdefault("TERM", "xterm-256color")
        settings = backend.pod_settings()
        command = [backend.python, "-I", "-c", programs.source("process"), str(settings.uid), str(settings.gid)]
        rows, cols = pty or (0, 0)
        command += [workdir, json.dumps(full_env), str(rows), str(cols), *argv]
        io = PodExecSocket(await connect(command, stdin or pty is not None), tty=pty is not None)
        timeout = backend.request_timeout
        try:
            pid, early = await asyncio.wait_for(self._pid_line(io), timeout)
        except asyncio.TimeoutError:
            await io.close()
            raise BackendUnavailable(f"the sandbox did not start the command in {timeout:g} s") from None
        if pid is None:
            await io.close()
            code = exit_code(io.status)
            said = b"".join(data for _, data in early).decode(errors="replace").strip()[-500:]
            if code == NO_CWD:
                raise InvalidInput(f"the working directory {workdir} does not exist in the sandbox", field="cwd")
            raise BackendUnavailable(f"the sandbox could not start the command (exit code {code}): {said}")
        stream = KubernetesExecStream(
            pid, ExecConfig(list(argv), workdir, dict(env), tag, pty, stdin), self, sandbox_id, io
        )
        stream.start_reading(early)
        self.table.add(sandbox_id, stream)
        return stream

    @staticmethod
    async def _pid_line(io: PodExecSocket) -> tuple[int | None, list[tuple[str, bytes]]]:
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
                if rest:
                    early.append((kind, rest))
                try:
                    return int(first.strip()), early
                except ValueError:  # a terminal's: what it said before failing (e.g. no such directory)
                    return None, [(kind, bytes(line))]

    async def kill_group(self, sandbox_id: str, pid: int, signum: int) -> None:
        """Send ``signum`` to process group ``pid`` in the pod (as its only user: it may signal only its own)."""
        command = [self.backend.python, "-I", "-c", KILL_GROUP, str(pid), str(signum)]
        await self.backend.files.run(sandbox_id, (command, b""))
