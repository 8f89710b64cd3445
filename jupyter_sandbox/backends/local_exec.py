"""Commands of a local sandbox (the process service): subprocesses, each leading its own session.

Every command gets the sandbox's limits (``preexec``, which also makes it a session leader, so a
signal reaches all it started through its process group) and, with a terminal, a pty of its own
whose master the server reads on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty as ptys
import signal
import struct
import termios
from collections.abc import Callable

from ..errors import InvalidInput
from .exec_stream import ExecConfig, ExecStream

CHUNK = 65536


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class LocalExecStream(ExecStream):
    def __init__(self, proc: asyncio.subprocess.Process, config: ExecConfig, master: int | None) -> None:
        super().__init__(proc.pid, config)
        self._proc = proc
        self._master = master
        self._tasks: list[asyncio.Task[None]] = []

    def start_reading(self) -> None:
        if self._master is not None:
            self._tasks.append(asyncio.ensure_future(self._read_pty(self._master)))
        else:
            for kind, pipe in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr)):
                assert pipe is not None
                self._tasks.append(asyncio.ensure_future(self._read_pipe(kind, pipe)))
        self._waiter = asyncio.ensure_future(self._wait())

    async def _read_pipe(self, kind: str, pipe: asyncio.StreamReader) -> None:
        while data := await pipe.read(CHUNK):
            self._publish(kind, data)

    async def _read_pty(self, master: int) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    data = os.read(master, CHUNK)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: every holder of the terminal is gone
                    return
                if not data:
                    return
                self._publish("pty", data)
        finally:
            loop.remove_reader(master)

    async def _wait(self) -> None:
        code = await self._proc.wait()
        if self._master is not None:
            # the pty's last bytes may still be unread; once the session is gone the master reads EIO
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks), 5)
            os.close(self._master)
            self._master = None
        else:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._finish(code)

    async def _write(self, data: bytes) -> None:
        if self._master is not None:
            await asyncio.to_thread(self._write_all, self._master, data)
        elif self._proc.stdin is not None:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain()

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    async def _close_stdin(self) -> None:
        if self._master is not None:
            self._write_all(self._master, b"\x04")  # a terminal's end of input
        elif self._proc.stdin is not None:
            self._proc.stdin.close()

    async def _resize(self, rows: int, cols: int) -> None:
        if self._master is not None:
            set_size(self._master, rows, cols)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGWINCH)

    async def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    async def close(self) -> None:
        await self.signal(signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wait(), 10)


async def start_local(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    config: ExecConfig,
    limits: Callable[[], None],
) -> LocalExecStream:
    """Start ``argv`` in ``cwd`` with ``env`` and the sandbox's ``limits`` (which make it a session leader)."""
    if not argv or not argv[0]:
        raise InvalidInput("a command is needed", field="cmd")
    master: int | None = None
    slave: int | None = None
    if config.pty:
        master, slave = ptys.openpty()
        set_size(slave, *config.pty)
        os.set_blocking(master, False)

        def preexec() -> None:
            limits()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes the session's terminal

        streams: dict[str, int] = {"stdin": slave, "stdout": slave, "stderr": slave}
    else:
        preexec = limits
        pipe = asyncio.subprocess.PIPE
        streams = {"stdin": pipe if config.stdin else asyncio.subprocess.DEVNULL, "stdout": pipe, "stderr": pipe}
    try:
        proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, preexec_fn=preexec, **streams)  # type: ignore[arg-type]
    except FileNotFoundError:
        if master is not None:
            os.close(master)
        raise InvalidInput(f"{argv[0]}: command not found", field="cmd") from None
    finally:
        if slave is not None:
            os.close(slave)
    stream = LocalExecStream(proc, config, master)
    stream.start_reading()
    return stream
