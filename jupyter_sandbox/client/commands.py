"""``sandbox.commands``: E2B's commands API (``run``, ``connect``, ``list``, ``kill``,
``send_stdin``) for the project client, async (``AsyncCommands``) and blocking (``Commands``).

A command line runs as ``bash -l -c cmd`` in the sandbox (core/commands.py). ``run`` waits for
it and returns a ``CommandResult``, raising ``CommandExitException`` on a non-zero exit as E2B's
SDK does; ``background=True`` returns a handle at once (its pid, ``wait()``, ``kill()``). The
command belongs to the sandbox: leaving its handle (``disconnect()``) leaves it running.

The blocking twins call their callbacks on the caller's thread, while it waits (``run``, or a
handle's ``wait``), the way E2B's blocking SDK does.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import queue
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CommandExitException, CommandTimeout, NotFound, SandboxError
from ..models import CommandRequest
from .connection import Event, maybe_await
from .loop import private_loop

if TYPE_CHECKING:
    from .sandbox import AsyncSandbox

OutputCallback = Callable[[str], Any]
DEFAULT_TIMEOUT = 60.0  # seconds ``run`` waits for a command before it kills it (E2B's default)


@dataclass
class CommandResult:
    """A finished command (E2B's fields). ``error`` says why when a signal ended it."""

    stdout: str
    stderr: str
    exit_code: int
    error: str | None = None


@dataclass
class ProcessInfo:
    """A running command, as ``commands.list()`` gives it (E2B's fields)."""

    pid: int
    tag: str | None
    cmd: str
    args: list[str] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


class _Follower:
    """Folds a command's wire events into its output; fires the callbacks."""

    def __init__(self, on_stdout: OutputCallback | None, on_stderr: OutputCallback | None):
        self.callbacks = {"stdout": on_stdout, "stderr": on_stderr}
        self.output: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.exit_code: int | None = None
        self.error: str | None = None
        self.started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def __call__(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "start" and not self.started.done():
            self.started.set_result(int(event["pid"]))
        elif kind in ("stdout", "stderr"):
            self.output[kind].append(event.get("text", ""))
            callback = self.callbacks[kind]
            if callback is not None:
                await maybe_await(callback(event.get("text", "")))
        elif kind == "end":
            self.exit_code, self.error = int(event["exit_code"]), event.get("error")
        elif kind == "error":  # the server failed mid-stream (the sandbox went away)
            self.error = str(event.get("value") or event)


class AsyncCommandHandle:
    """A command that runs on in the sandbox: its ``pid``, its output so far, ``wait()``, ``kill()``."""

    def __init__(self, commands: AsyncCommands, pid: int, follower: _Follower, task: asyncio.Task[None]):
        self._commands, self.pid, self._follower, self._task = commands, pid, follower, task

    @property
    def stdout(self) -> str:
        return "".join(self._follower.output["stdout"])

    @property
    def stderr(self) -> str:
        return "".join(self._follower.output["stderr"])

    @property
    def exit_code(self) -> int | None:
        """None while it runs."""
        return self._follower.exit_code

    @property
    def error(self) -> str | None:
        return self._follower.error

    async def wait(self) -> CommandResult:
        """Its result once it ends; CommandExitException when its exit code is not 0."""
        await self._task
        if self.exit_code is None:
            raise SandboxError(f"the command {self.pid} was lost before its end: {self.error or 'no end was sent'}")
        if self.exit_code != 0:
            raise CommandExitException(self.stdout, self.stderr, self.exit_code, self.error)
        return CommandResult(self.stdout, self.stderr, self.exit_code, self.error)

    async def ended_within(self, timeout: float | None) -> bool:
        """Whether it ends within ``timeout`` seconds (None: waits for its end)."""
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        return bool(done)

    async def kill(self) -> bool:
        """SIGKILL to it and what it started; False when it had ended already."""
        return await self._commands.kill(self.pid)

    async def send_stdin(self, data: str) -> None:
        await self._commands.send_stdin(self.pid, data)

    async def disconnect(self) -> None:
        """Stop following it; it runs on (``commands.connect(pid)`` follows it again)."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class AsyncCommands:
    """``sandbox.commands`` of an ``AsyncSandbox``. Callbacks may be coroutine functions."""

    def __init__(self, sandbox: AsyncSandbox):
        self._sandbox = sandbox

    async def _follow(
        self,
        start: Callable[[_Follower], Coroutine[Any, Any, None]],
        on_stdout: OutputCallback | None,
        on_stderr: OutputCallback | None,
    ) -> AsyncCommandHandle:
        follower = _Follower(on_stdout, on_stderr)
        task = asyncio.ensure_future(start(follower))
        first: set[asyncio.Future[Any]] = {follower.started, task}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not follower.started.done():
            task.result()  # its error (a 4xx: bad cwd, unknown sandbox...)
            raise SandboxError("the command's stream ended before it started")
        return AsyncCommandHandle(self, follower.started.result(), follower, task)

    async def run(
        self,
        cmd: str,
        background: bool = False,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        stdin: bool = False,
        tag: str | None = None,
    ) -> Any:
        """Run ``cmd`` (a bash command line). Waits for it and returns its ``CommandResult`` (a
        non-zero exit raises CommandExitException; past ``timeout`` seconds, 0 or None for none, it
        is killed and CommandTimeout raised); ``background=True`` returns an ``AsyncCommandHandle``
        at once. ``stdin=True`` keeps its stdin open for ``send_stdin``."""
        request = CommandRequest(cmd=cmd, envs=envs, cwd=cwd, stdin=stdin or None, tag=tag)
        connection, key = self._sandbox.connection, self._sandbox.id
        handle = await self._follow(
            lambda follower: connection.run_command(key, request, follower), on_stdout, on_stderr
        )
        if background:
            return handle
        if not await handle.ended_within(timeout or None):
            await handle.kill()
            await handle.disconnect()
            raise CommandTimeout(f"the command did not end within {timeout:g} s and was killed: {cmd!r}")
        return await handle.wait()

    async def connect(
        self, pid: int, on_stdout: OutputCallback | None = None, on_stderr: OutputCallback | None = None
    ) -> AsyncCommandHandle:
        """A handle on a running command, following its output from now on."""
        connection, key = self._sandbox.connection, self._sandbox.id
        return await self._follow(lambda follower: connection.connect_command(key, pid, follower), on_stdout, on_stderr)

    async def list(self) -> builtins.list[ProcessInfo]:
        """The sandbox's running commands."""
        return [
            ProcessInfo(p["pid"], p.get("tag"), p["cmd"], p.get("args", []), p.get("envs", {}), p.get("cwd"))
            for p in await self._sandbox.connection.list_commands(self._sandbox.id)
        ]

    async def kill(self, pid: int) -> bool:
        """SIGKILL to a command and what it started; False when there is no such running command."""
        try:
            await self._sandbox.connection.kill_command(self._sandbox.id, pid)
        except NotFound:
            return False
        return True

    async def send_stdin(self, pid: int, data: str) -> None:
        """Write ``data`` to the stdin of a command started with ``stdin=True``."""
        await self._sandbox.connection.send_stdin(self._sandbox.id, pid, data)


# ---------------------------------------------------------------------------------------
# The blocking twins: callbacks are queued by the loop thread and called here, while waiting


class _Calls:
    """Callbacks handed from the loop thread to the thread that waits (and calls them)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[Callable[[Any], Any], Any]] = queue.SimpleQueue()

    def here(self, callback: OutputCallback | None) -> OutputCallback | None:
        return (lambda text: self.queue.put((callback, text))) if callback else None

    def wait(self, future: concurrent.futures.Future[Any]) -> Any:
        """Call the queued callbacks until ``future`` is done; its result."""
        done = object()
        future.add_done_callback(lambda _: self.queue.put((lambda _: None, done)))
        while True:
            callback, argument = self.queue.get()
            if argument is done:
                break
            callback(argument)
        while not self.queue.empty():  # what came in the last moment
            callback, argument = self.queue.get()
            callback(argument)
        return future.result()


class CommandHandle:
    """The blocking twin of ``AsyncCommandHandle``; its callbacks are called during ``wait()``."""

    def __init__(self, handle: AsyncCommandHandle, calls: _Calls):
        self._async, self._calls = handle, calls

    pid = property(lambda self: self._async.pid)
    stdout = property(lambda self: self._async.stdout)
    stderr = property(lambda self: self._async.stderr)
    exit_code = property(lambda self: self._async.exit_code)
    error = property(lambda self: self._async.error)

    def wait(self) -> CommandResult:
        result: CommandResult = self._calls.wait(private_loop().submit(self._async.wait()))
        return result

    def kill(self) -> bool:
        return private_loop().run(self._async.kill())

    def send_stdin(self, data: str) -> None:
        private_loop().run(self._async.send_stdin(data))

    def disconnect(self) -> None:
        private_loop().run(self._async.disconnect())


class Commands:
    """``sandbox.commands`` of a ``Sandbox`` (see ``AsyncCommands``)."""

    def __init__(self, commands: AsyncCommands):
        self._async = commands

    def run(
        self,
        cmd: str,
        background: bool = False,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        stdin: bool = False,
        tag: str | None = None,
    ) -> Any:
        """As ``AsyncCommands.run``; callbacks are called on this thread."""
        calls = _Calls()
        coroutine = self._async.run(
            cmd, background, envs, cwd, calls.here(on_stdout), calls.here(on_stderr), timeout, stdin, tag
        )
        if background:
            return CommandHandle(private_loop().run(coroutine), calls)
        return calls.wait(private_loop().submit(coroutine))

    def connect(
        self, pid: int, on_stdout: OutputCallback | None = None, on_stderr: OutputCallback | None = None
    ) -> CommandHandle:
        calls = _Calls()
        handle = private_loop().run(self._async.connect(pid, calls.here(on_stdout), calls.here(on_stderr)))
        return CommandHandle(handle, calls)

    def list(self) -> builtins.list[ProcessInfo]:
        return private_loop().run(self._async.list())

    def kill(self, pid: int) -> bool:
        return private_loop().run(self._async.kill(pid))

    def send_stdin(self, pid: int, data: str) -> None:
        private_loop().run(self._async.send_stdin(pid, data))
