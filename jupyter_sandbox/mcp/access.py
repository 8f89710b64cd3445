"""What the MCP tools need of whatever runs sandboxes, for one user: ``SandboxAccess``.

Two implementations, so one set of tools serves both transports:

- ``ManagerAccess``: the SandboxManager of this process, acting for the authenticated owner (the
  streamable HTTP route inside Jupyter Server or the Hub's sandbox service). Commands run through
  core/commands.py, as the REST command routes do.
- ``ConnectionAccess``: a client ``Connection`` (``jupyter sandbox mcp`` over stdio: the user's
  Jupyter server over HTTP, or the embedded manager); commands go through its command API, which
  reaches the same core/commands.py.

Either way a command is the backend's process (``exec_stream``, ``bash -l -c``); waiting for it,
keeping its output and killing it at its timeout is ``SandboxAccess.run_command``, for both.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..client.connection import Connection
from ..errors import InvalidInput, NotFound, SandboxError
from ..models import CommandRequest, ContextModel, ExecuteRequest, Execution, SandboxModel, SandboxRequest

if TYPE_CHECKING:  # stdio needs no manager in its process
    from ..core.commands import SandboxCommands
    from ..core.manager import SandboxManager

EventSink = Callable[[dict[str, Any]], Awaitable[None] | None]
OUTPUT_CAP = 200_000  # characters of a command's stdout (and of its stderr) kept for the answer


class CommandOutput:
    """Folds a command's wire events: its pid, its output (the first OUTPUT_CAP characters of each
    stream) and its end."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.output: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.kept = {"stdout": 0, "stderr": 0}
        self.exit_code: int | None = None
        self.error: str | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "start":
            self.pid = int(event["pid"])
        elif kind in ("stdout", "stderr"):
            text = event.get("text", "")[: OUTPUT_CAP - self.kept[kind]]
            self.output[kind].append(text)
            self.kept[kind] += len(text)
        elif kind == "end":
            self.exit_code = int(event["exit_code"])
        elif kind == "error":  # the server failed mid-stream (the sandbox went away)
            self.error = str(event.get("value") or event)

    def result(self, timed_out: bool, timeout: float) -> CommandResult:
        if self.exit_code is None and not timed_out:
            raise SandboxError(f"the command was lost before its end: {self.error or 'no end was sent'}")
        stdout, stderr = "".join(self.output["stdout"]), "".join(self.output["stderr"])
        return CommandResult(self.exit_code, stdout, stderr, timed_out, timeout)


class CommandResult:
    """What a command did: its exit code and output, or that it was killed at its timeout."""

    def __init__(self, exit_code: int | None, stdout: str, stderr: str, timed_out: bool, timeout: float) -> None:
        self.exit_code = exit_code  # a signal's end is -1 (core/commands.py's exit_status)
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out
        self.timeout = timeout

    @property
    def failed(self) -> bool:
        return self.timed_out or self.exit_code != 0

    @property
    def ending(self) -> str:
        """How it ended, for people."""
        return f"killed after its timeout of {self.timeout:g} s" if self.timed_out else f"exit code {self.exit_code}"


class SandboxAccess(abc.ABC):
    """One user's sandboxes. ``ref`` is a sandbox's id or name; errors are SandboxErrors."""

    @abc.abstractmethod
    async def list(self) -> builtins.list[SandboxModel]: ...

    @abc.abstractmethod
    async def get(self, ref: str) -> SandboxModel: ...

    @abc.abstractmethod
    async def create(self, request: SandboxRequest) -> SandboxModel: ...

    @abc.abstractmethod
    async def remove(self, ref: str) -> None: ...

    @abc.abstractmethod
    async def create_context(self, ref: str, language: str | None, cwd: str | None) -> ContextModel: ...

    @abc.abstractmethod
    async def execute(self, ref: str, request: ExecuteRequest, on_event: EventSink) -> Execution: ...

    @abc.abstractmethod
    async def read_file(self, ref: str, path: str) -> bytes: ...

    @abc.abstractmethod
    async def write_file(self, ref: str, path: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def list_files(self, ref: str, path: str) -> builtins.list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def follow_command(self, ref: str, request: CommandRequest, on_event: EventSink) -> None:
        """Start a command and pass its wire events (core/commands.py's command_events) to ``on_event``
        until it ends; cancelling stops the following only."""

    @abc.abstractmethod
    async def kill_command(self, ref: str, pid: int) -> None:
        """SIGKILL to a running command and what it started (NotFound when it has ended)."""

    async def run_command(self, ref: str, command: str, cwd: str | None, timeout: float) -> CommandResult:
        """Run a command line to its end, or kill it at ``timeout`` seconds keeping what it wrote."""
        if timeout <= 0:
            raise InvalidInput("timeout must be a positive number of seconds", field="timeout")
        output = CommandOutput()
        follow = asyncio.ensure_future(self.follow_command(ref, CommandRequest(cmd=command, cwd=cwd), output))
        done, _ = await asyncio.wait({follow}, timeout=timeout)
        if done:
            follow.result()  # its error: a bad cwd, an unknown sandbox...
            return output.result(timed_out=False, timeout=timeout)
        try:
            if output.pid is not None:
                await self.kill_command(ref, output.pid)
        except NotFound:  # it ended as its timeout came: its stream ends with its end event
            await follow
            return output.result(timed_out=False, timeout=timeout)
        finally:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
        return output.result(timed_out=True, timeout=timeout)


class ManagerAccess(SandboxAccess):
    """The manager of this process, for ``owner``."""

    def __init__(self, manager: SandboxManager, owner: str) -> None:
        self.manager = manager
        self.owner = owner

    async def list(self) -> builtins.list[SandboxModel]:
        return self.manager.list(self.owner)

    async def get(self, ref: str) -> SandboxModel:
        return self.manager.get(self.owner, ref)

    async def create(self, request: SandboxRequest) -> SandboxModel:
        return await self.manager.create(self.owner, request.name, request.spec())

    async def remove(self, ref: str) -> None:
        await self.manager.remove(self.owner, ref)

    async def create_context(self, ref: str, language: str | None, cwd: str | None) -> ContextModel:
        return await self.manager.create_context(self.owner, ref, language=language, cwd=cwd)

    async def execute(self, ref: str, request: ExecuteRequest, on_event: EventSink) -> Execution:
        return await self.manager.execute(self.owner, ref, request.code, on_event=on_event, **request.options())

    async def read_file(self, ref: str, path: str) -> bytes:
        return await self.manager.read_file(self.owner, ref, path)

    async def write_file(self, ref: str, path: str, data: bytes) -> None:
        await self.manager.write_file(self.owner, ref, path, data)

    async def list_files(self, ref: str, path: str) -> builtins.list[dict[str, Any]]:
        return await self.manager.list_files(self.owner, ref, path)

    @property
    def _commands(self) -> SandboxCommands:
        from ..core.commands import SandboxCommands  # here: stdio's process imports no backend

        return SandboxCommands(self.manager)

    async def follow_command(self, ref: str, request: CommandRequest, on_event: EventSink) -> None:
        from ..core.commands import command_events

        async for event in command_events(await self._commands.start(self.owner, ref, request)):
            outcome = on_event(event)
            if outcome is not None:
                await outcome

    async def kill_command(self, ref: str, pid: int) -> None:
        await self._commands.kill(self.owner, ref, pid)


class ConnectionAccess(SandboxAccess):
    """A client Connection (its server decides the owner from its token)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def list(self) -> builtins.list[SandboxModel]:
        return await self.connection.list()

    async def get(self, ref: str) -> SandboxModel:
        return await self.connection.get(ref)

    async def create(self, request: SandboxRequest) -> SandboxModel:
        return await self.connection.create(request)

    async def remove(self, ref: str) -> None:
        await self.connection.remove(ref)

    async def create_context(self, ref: str, language: str | None, cwd: str | None) -> ContextModel:
        return await self.connection.create_context(ref, language, cwd)

    async def execute(self, ref: str, request: ExecuteRequest, on_event: EventSink) -> Execution:
        execution = Execution()

        async def fold(event: dict[str, Any]) -> None:
            execution.apply_event(event)
            outcome = on_event(event)
            if outcome is not None:
                await outcome

        await self.connection.execute(ref, request, fold)
        return execution

    async def read_file(self, ref: str, path: str) -> bytes:
        return await self.connection.read_file(ref, path)

    async def write_file(self, ref: str, path: str, data: bytes) -> None:
        await self.connection.write_file(ref, path, data)

    async def list_files(self, ref: str, path: str) -> builtins.list[dict[str, Any]]:
        return await self.connection.list_files(ref, path)

    async def follow_command(self, ref: str, request: CommandRequest, on_event: EventSink) -> None:
        await self.connection.run_command(ref, request, on_event)

    async def kill_command(self, ref: str, pid: int) -> None:
        await self.connection.kill_command(ref, pid)
