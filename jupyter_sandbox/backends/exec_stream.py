"""A command running in a sandbox, as every backend hands it out: its output to any number of readers.

A backend's ``exec_stream`` starts the command and returns an ``ExecStream``; the process then belongs
to the sandbox, not to whoever asked: it runs on when its first reader leaves (a background run), a
later reader finds it again by pid (``ExecTable``), and it ends with the sandbox. Each reader
(``async for event in stream``) gets what the process writes from then on, then its exit; the first
reader also gets what was written before anyone read (up to ``BACKLOG`` bytes).
"""

from __future__ import annotations

import abc
import asyncio
import signal
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from ..errors import InvalidInput, NotFound, QuotaExceeded

BACKLOG = 1 << 20  # bytes kept for the first reader, written before it came
READER_QUEUE = 1024  # events one reader may fall behind by; beyond that it misses output (never the exit)
SIGNALS = {signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP}


@dataclass
class ExecEvent:
    """One thing a process did: wrote ``data`` on ``kind`` ("stdout", "stderr" or "pty"), or exited
    (``kind`` "exit", with ``exit_code``: negative for the signal that killed it)."""

    kind: str
    data: bytes = b""
    exit_code: int | None = None


@dataclass
class ExecConfig:
    """What a process was started with (as the process service lists it)."""

    argv: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    tag: str | None = None
    pty: tuple[int, int] | None = None  # (rows, cols) when it runs in a terminal
    stdin: bool = False


class ExecStream(abc.ABC):
    """A process in a sandbox: read its output (``async for``), write its stdin, resize its terminal,
    signal it. Backends implement the four verbs and feed ``_publish`` and ``_finish``."""

    def __init__(self, pid: int, config: ExecConfig) -> None:
        self.pid = pid
        self.config = config
        self.exit_code: int | None = None
        self.ended = asyncio.Event()
        self._readers: list[asyncio.Queue[ExecEvent]] = []
        self._backlog: list[ExecEvent] | None = []  # None once a reader came
        self._backlog_size = 0

    @property
    def running(self) -> bool:
        return not self.ended.is_set()

    def _publish(self, kind: str, data: bytes) -> None:
        """From the backend: the process wrote ``data`` on ``kind``."""
        if not data:
            return
        event = ExecEvent(kind, data)
        if self._backlog is not None and self._backlog_size + len(data) <= BACKLOG:
            self._backlog.append(event)
            self._backlog_size += len(data)
        for queue in self._readers:
            if queue.qsize() < READER_QUEUE:  # a stalled reader loses output, not the process its pipe
                queue.put_nowait(event)

    def _finish(self, exit_code: int | None) -> None:
        """From the backend: the process is gone (``exit_code`` None when no one can tell)."""
        if self.ended.is_set():
            return
        self.exit_code = exit_code
        self.ended.set()
        for queue in self._readers:
            queue.put_nowait(ExecEvent("exit", exit_code=exit_code))

    def __aiter__(self) -> AsyncIterator[ExecEvent]:
        return self.events()

    async def events(self) -> AsyncGenerator[ExecEvent, None]:
        """What the process writes from now on (the first reader: from its start), then its exit."""
        queue: asyncio.Queue[ExecEvent] = asyncio.Queue()
        for event in self._backlog or []:
            queue.put_nowait(event)
        self._backlog = None
        if self.ended.is_set():
            queue.put_nowait(ExecEvent("exit", exit_code=self.exit_code))
        else:
            self._readers.append(queue)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.kind == "exit":
                    return
        finally:
            if queue in self._readers:
                self._readers.remove(queue)

    async def wait(self) -> int | None:
        """The exit code, once the process ended."""
        await self.ended.wait()
        return self.exit_code

    def _check_input(self) -> None:
        if not self.running:
            raise NotFound(f"process {self.pid} has ended")
        if not (self.config.stdin or self.config.pty):
            raise InvalidInput(f"process {self.pid} was started without stdin", field="stdin")

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin (its terminal's input, with a PTY)."""
        self._check_input()
        await self._write(data)

    async def close_stdin(self) -> None:
        """End the process's stdin (it reads EOF)."""
        self._check_input()
        await self._close_stdin()

    async def resize(self, rows: int, cols: int) -> None:
        """Give the process's terminal a new size."""
        if not self.config.pty:
            raise InvalidInput(f"process {self.pid} has no terminal to resize", field="pty")
        if not (0 < rows < 65536 and 0 < cols < 65536):
            raise InvalidInput("a terminal's rows and cols are between 1 and 65535", field="pty")
        if self.running:
            await self._resize(rows, cols)
            self.config.pty = (rows, cols)

    async def signal(self, signum: int) -> None:
        """Send ``signum`` to the process and to everything it started (its process group)."""
        if signum not in SIGNALS:
            raise InvalidInput(f"signal {signum} is not one a process may be sent", field="signal")
        if self.running:
            await self._signal(signum)

    @abc.abstractmethod
    async def _write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _close_stdin(self) -> None: ...

    @abc.abstractmethod
    async def _resize(self, rows: int, cols: int) -> None: ...

    @abc.abstractmethod
    async def _signal(self, signum: int) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Kill the process and let go of its stream (its sandbox is going)."""


class ExecTable:
    """The processes a backend started, by sandbox and pid; an ended one stays findable a while (its
    exit can still be read) until ``KEEP_ENDED`` later ones ended after it."""

    KEEP_ENDED = 64

    def __init__(self) -> None:
        self._streams: dict[str, dict[int, ExecStream]] = {}

    def add(self, sandbox_id: str, stream: ExecStream) -> None:
        streams = self._streams.setdefault(sandbox_id, {})
        ended = [pid for pid, s in streams.items() if not s.running]
        for pid in ended[: max(0, len(ended) - self.KEEP_ENDED)]:
            del streams[pid]
        streams[stream.pid] = stream

    def check_room(self, sandbox_id: str, limit: int) -> None:
        """QuotaExceeded when the sandbox runs ``limit`` commands already (each holds a stream of the server's)."""
        if len(self.running(sandbox_id)) >= limit:
            raise QuotaExceeded(f"sandbox {sandbox_id} runs {limit} commands already: end one first")

    def running(self, sandbox_id: str) -> list[ExecStream]:
        return [s for s in self._streams.get(sandbox_id, {}).values() if s.running]

    def find(self, sandbox_id: str, pid: int) -> ExecStream:
        stream = self._streams.get(sandbox_id, {}).get(pid)
        if stream is None:
            raise NotFound(f"no process {pid} in sandbox {sandbox_id}")
        return stream

    async def close(self, sandbox_id: str) -> None:
        """Kill every process of a sandbox (it is being removed or restarted)."""
        for stream in self._streams.pop(sandbox_id, {}).values():
            await stream.close()

    async def close_all(self) -> None:
        for sandbox_id in list(self._streams):
            await self.close(sandbox_id)
