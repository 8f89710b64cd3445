"""Commands and directory watches in an owner's sandboxes, as the project's own API gives them
(the REST routes in server/command_routes.py and the embedded client connection): one place that
finds the owner's sandbox, starts a command line the way E2B's SDK does (``bash -l -c``), and
turns a process's output and a watch's changes into the wire's events.

The processes are the backend's ``ExecStream``s (backends/exec_stream.py): they outlive the
request that started them (a background command), and end with the sandbox.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from ..backends.base import confine
from ..backends.dir_watch import DirWatch
from ..backends.exec_stream import ExecStream
from ..errors import NotFound
from ..models import CommandRequest

if TYPE_CHECKING:
    from .manager import SandboxManager

# E2B's SDK runs a command line through a login shell; so does this API (same PATH, same quoting)
SHELL = ("/bin/bash", "-l", "-c")
SIGNAL_NAMES = {9: "killed", 15: "terminated", 2: "interrupt", 1: "hangup"}
WATCH_KINDS = ("create", "write", "remove", "rename", "chmod")  # E2B's FilesystemEventType values


def exit_status(code: int | None) -> tuple[int, str | None]:
    """(exit code, error) as E2B reports a process's end: -1 and why when a signal ended it."""
    if code is None:
        return -1, "the process's end was not seen"
    if code < 0:
        return -1, f"signal: {SIGNAL_NAMES.get(-code, -code)}"
    return code, None


def command_info(stream: ExecStream) -> dict[str, Any]:
    """A running command as ``GET commands`` lists it (E2B's ProcessInfo)."""
    config = stream.config
    return {
        "pid": stream.pid,
        "cmd": config.argv[0],
        "args": config.argv[1:],
        "envs": config.env,
        "cwd": config.cwd,
        "tag": config.tag,
    }


async def command_events(stream: ExecStream) -> AsyncGenerator[dict[str, Any], None]:
    """A command's wire events: ``start`` (its pid), ``stdout``/``stderr`` text as it comes, ``end``."""
    yield {"type": "start", "pid": stream.pid}
    # a UTF-8 character may be split between two reads: each stream decodes across them
    decoders = {kind: codecs.getincrementaldecoder("utf-8")("replace") for kind in ("stdout", "stderr", "pty")}
    async for event in stream.events():
        if event.kind == "exit":
            exit_code, error = exit_status(event.exit_code)
            yield {"type": "end", "exit_code": exit_code, "error": error}
            return
        text = decoders[event.kind].decode(event.data)
        if text:
            yield {"type": "stderr" if event.kind == "stderr" else "stdout", "text": text}


class SandboxCommands:
    """An owner's commands and watches; another owner's sandbox is not found (404)."""

    def __init__(self, manager: SandboxManager) -> None:
        self.manager = manager

    def _sandbox_id(self, owner: str, ref: str) -> str:
        # using a sandbox's commands counts as its activity (an idle cull spares it)
        return self.manager.registry.use(owner, ref).model.id

    async def start(self, owner: str, ref: str, request: CommandRequest) -> ExecStream:
        return await self.manager.backend.exec_stream(
            self._sandbox_id(owner, ref),
            [*SHELL, request.cmd],
            cwd=request.cwd or None,
            env=request.envs or {},
            stdin=bool(request.stdin),
            tag=request.tag,
        )

    def list(self, owner: str, ref: str) -> list[ExecStream]:
        return self.manager.backend.exec_streams(self._sandbox_id(owner, ref))

    def find(self, owner: str, ref: str, pid: int) -> ExecStream:
        return self.manager.backend.find_exec(self._sandbox_id(owner, ref), pid)

    async def kill(self, owner: str, ref: str, pid: int) -> None:
        """SIGKILL to a running command and what it started (NotFound when it has ended)."""
        stream = self.find(owner, ref, pid)
        if not stream.running:
            raise NotFound(f"process {pid} has ended")
        await stream.signal(9)

    async def send_stdin(self, owner: str, ref: str, pid: int, data: bytes) -> None:
        await self.find(owner, ref, pid).write(data)

    async def watch(self, owner: str, ref: str, path: str, recursive: bool) -> DirWatch:
        """A watch on the owner's sandbox directory ``path``; its caller closes it."""
        return await self.manager.files.watch(self.manager.registry.use(owner, ref), confine(path), recursive)


async def watch_events(watch: DirWatch) -> AsyncGenerator[dict[str, Any], None]:
    """A watch's wire events: ``start``, then one ``event`` per change (name below the directory,
    kind), then ``end`` when the directory or the sandbox is gone. The caller closes the watch."""
    yield {"type": "start"}
    while True:
        batch = await watch.next()
        for name, kind in batch.changes:
            yield {"type": "event", "name": name, "kind": kind}
        if batch.last:
            yield {"type": "end"}
            return
