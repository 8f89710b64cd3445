"""What the MCP tools need of whatever runs sandboxes, for one user: ``SandboxAccess``.

Two implementations, so one set of tools serves both transports:

- ``ManagerAccess``: the SandboxManager of this process, acting for the authenticated owner (the
  streamable HTTP route inside Jupyter Server or the Hub's sandbox service). Commands run through
  the backend's ``exec_stream``, as E2B's process service does.
- ``ConnectionAccess``: a client ``Connection`` (``jupyter sandbox mcp`` over stdio: the user's
  Jupyter server over HTTP, or the embedded manager). The Connection has no command API, so a
  command runs as a subprocess started by the sandbox's kernel.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import json
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..client.connection import Connection
from ..errors import InvalidInput, SandboxError
from ..models import ContextModel, ExecuteRequest, Execution, SandboxModel, SandboxRequest

if TYPE_CHECKING:  # stdio needs no manager in its process
    from ..core.manager import SandboxManager

EventSink = Callable[[dict[str, Any]], Awaitable[None] | None]
OUTPUT_CAP = 200_000  # bytes of a command's stdout (and of its stderr) kept for the answer


class CommandResult:
    """What a command did: its exit code (None when it was killed at its timeout) and output."""

    def __init__(self, exit_code: int | None, stdout: str, stderr: str, timed_out: bool = False) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out


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
    async def run_command(self, ref: str, command: str, cwd: str | None, timeout: float) -> CommandResult: ...


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

    async def run_command(self, ref: str, command: str, cwd: str | None, timeout: float) -> CommandResult:
        sandbox = self.manager.registry.use(self.owner, ref)  # NotFound for another user's
        stream = await self.manager.backend.exec_stream(sandbox.model.id, ["/bin/sh", "-c", command], cwd=cwd)
        out = {"stdout": bytearray(), "stderr": bytearray()}

        async def read() -> int | None:
            async for event in stream:
                if event.kind == "exit":
                    return event.exit_code
                kept = out.get(event.kind)
                if kept is not None and len(kept) < OUTPUT_CAP:
                    kept += event.data[: OUTPUT_CAP - len(kept)]
            return stream.exit_code

        try:
            code = await asyncio.wait_for(read(), timeout)
            timed_out = False
        except asyncio.TimeoutError:
            await stream.signal(signal.SIGKILL)  # and what it started: its process group
            code, timed_out = None, True
        return CommandResult(
            code, out["stdout"].decode(errors="replace"), out["stderr"].decode(errors="replace"), timed_out
        )


# Run by the sandbox's kernel for ConnectionAccess.run_command: the outcome as one JSON line.
COMMAND_CODE = """\
def _jupyter_sandbox_command(command, cwd, timeout, cap):
    import json, subprocess
    try:
        done = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, timeout=timeout)
        outcome = [done.returncode, done.stdout[:cap], done.stderr[:cap], False]
    except subprocess.TimeoutExpired as e:
        outcome = [None, (e.stdout or b"")[:cap], (e.stderr or b"")[:cap], True]
    outcome[1:3] = [b.decode(errors="replace") for b in outcome[1:3]]
    print(json.dumps(outcome))
_jupyter_sandbox_command({command!r}, {cwd!r}, {timeout!r}, {cap!r})
del _jupyter_sandbox_command
"""


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

    async def run_command(self, ref: str, command: str, cwd: str | None, timeout: float) -> CommandResult:
        code = COMMAND_CODE.format(command=command, cwd=cwd, timeout=timeout, cap=OUTPUT_CAP)
        # the kernel's own timeout is a margin above the command's, which ends it first
        execution = await self.execute(ref, ExecuteRequest(code=code, timeout=timeout + 30), lambda event: None)
        if execution.error is not None:
            raise SandboxError(f"the command could not be run: {execution.error.name}: {execution.error.value}")
        try:
            lines = "".join(execution.logs.stdout).strip().splitlines()
            exit_code, stdout, stderr, timed_out = json.loads(lines[-1] if lines else "")
        except ValueError:
            raise InvalidInput("the command's outcome could not be read from the sandbox") from None
        return CommandResult(exit_code, stdout, stderr, timed_out)
