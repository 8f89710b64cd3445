"""The embedded manager: a SandboxManager inside this process, for code with no server to talk to.

It owns the one factory for that manager, ``embedded_manager()``, which gives each process one
``EmbeddedManager`` (backend choice, server id, no reaping of an earlier run, its loop thread).
Three users share it:

- ``EmbeddedConnection`` (here): the client's ``Connection`` when discovery finds no server
  (plain scripts, ``jupyter sandbox exec``);
- ``jupyter sandbox run`` (cli.py), which runs a notebook's kernel through the provisioner;
- the kernel provisioner (kernel/provisioner.py) outside a Jupyter server (nbclient,
  ``jupyter console``).

The manager and its kernel clients live on the client's private loop thread (client/loop.py)
whatever loop calls: ``call(coro)`` runs a coroutine there from any loop, ``run(coro)`` blocks
for one from a thread that runs no loop. Its server id, ``inproc-<host>-<pid>``, is never a
server's, so nothing here touches a running server's containers; ``jupyter sandbox prune``
tells a dead script's leftovers by the pid in it (``embedded_server_pid``).
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import getpass
import logging
import os
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .backends import make_backend
from .client.connection import Connection, EventSink, maybe_await
from .client.loop import LoopThread, private_loop
from .core.commands import SandboxCommands, command_events, command_info, watch_events
from .core.deadlines import Deadlines
from .core.manager import SandboxManager
from .errors import Conflict
from .models import (
    CommandRequest,
    ContextModel,
    ExecuteRequest,
    InputReply,
    SandboxModel,
    SandboxRequest,
    SnapshotModel,
    VolumeModel,
    VolumeRequest,
)

T = TypeVar("T")

SERVER_ID_PREFIX = "inproc-"


def embedded_server_id(pid: int | None = None) -> str:
    """The server id of the embedded manager of process ``pid`` (default: this one) on this host."""
    return f"{SERVER_ID_PREFIX}{socket.gethostname()}-{os.getpid() if pid is None else pid}"


def embedded_server_pid(server_id: str) -> int | None:
    """The pid of the process whose embedded manager has ``server_id``, if it is one of this host's."""
    mine = f"{SERVER_ID_PREFIX}{socket.gethostname()}-"
    if not server_id.startswith(mine):
        return None
    pid = server_id[len(mine) :]
    return int(pid) if pid.isdigit() else None


class EmbeddedManager:
    """This process's SandboxManager, built on first use, living on the private loop thread."""

    def __init__(self, backend: str = "auto", *, log: logging.Logger | None = None, **backend_options: Any):
        self.backend_name = backend
        self.backend_options = backend_options
        self.log = log
        self.owner = getpass.getuser()
        self.server_id = embedded_server_id()
        self.loop: LoopThread = private_loop()
        self.description = "in-process"
        self._manager: SandboxManager | None = None
        self._deadlines: Deadlines | None = None
        self._lock = threading.Lock()
        atexit.register(self._shutdown_at_exit)

    @property
    def manager(self) -> SandboxManager:
        with self._lock:
            if self._manager is None:
                backend = make_backend(self.backend_name, log=self.log, **self.backend_options)
                options: dict[str, Any] = {"log": self.log} if self.log is not None else {}
                # reap_on_start=False: the earlier run of a script has no records to take back
                self._manager = SandboxManager(
                    backend=backend, server_id=self.server_id, reap_on_start=False, **options
                )
                self.description = f"in-process ({backend.name} backend)"
            return self._manager

    def deadlines(self) -> Deadlines:
        """The manager's deadlines, enforced from their first use on (call it on the manager's loop)."""
        if self._deadlines is None:
            self._deadlines = Deadlines(self.manager, self.log or logging.getLogger("jupyter_sandbox"))
            self._deadlines.start()
        return self._deadlines

    def same(self, backend: str | None, backend_options: dict[str, Any]) -> bool:
        """Whether asking for ``backend`` (None: any) with ``backend_options`` gets this manager."""
        return (backend is None or backend == self.backend_name) and (
            not backend_options or backend_options == self.backend_options
        )

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the manager's loop, from any loop."""
        if asyncio.get_running_loop() is self.loop.loop:
            return await coro
        return await self.loop.run_async(coro)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Block until ``coro`` is done on the manager's loop (from a thread that runs no loop)."""
        return self.loop.run(coro, timeout)

    async def shutdown(self) -> None:
        """Remove every sandbox this process made."""
        if self._manager is not None:
            await self.call(self._manager.shutdown())

    def _shutdown_at_exit(self) -> None:
        # Containers must not outlive the script that made them.
        if self._manager is not None and self._manager.list():
            self.run(self._manager.shutdown(), timeout=120)


_EMBEDDED: EmbeddedManager | None = None
_EMBEDDED_LOCK = threading.Lock()


def embedded_manager(
    backend: str | None = None, *, log: logging.Logger | None = None, **backend_options: Any
) -> EmbeddedManager:
    """This process's one embedded manager: the CLI, the embedded connection and the provisioner
    all get theirs here. The first call chooses the backend (None: ``auto``) and its options;
    a later call asking for another raises Conflict (one process, one set of sandboxes)."""
    global _EMBEDDED
    with _EMBEDDED_LOCK:
        if _EMBEDDED is None:
            _EMBEDDED = EmbeddedManager(backend or "auto", log=log, **backend_options)
        elif not _EMBEDDED.same(backend, backend_options):
            raise Conflict(
                f"this process's in-process manager runs the {_EMBEDDED.backend_name!r} backend with "
                f"{_EMBEDDED.backend_options}; it cannot also run {backend!r} with {backend_options}"
            )
        return _EMBEDDED


class EmbeddedConnection(Connection):
    """The client's connection to this process's embedded manager (plain scripts, no server).

    Events happen on the manager's loop and are handed back to the caller's loop.
    """

    def __init__(self, embedded: EmbeddedManager):
        self.embedded = embedded
        self.description = embedded.description

    @property
    def _manager(self) -> SandboxManager:
        manager = self.embedded.manager
        self.description = self.embedded.description  # says the backend once the manager has chosen it
        return manager

    @property
    def _owner(self) -> str:
        return self.embedded.owner

    async def list(self) -> builtins.list[SandboxModel]:
        return self._manager.list(self._owner)

    async def create(self, request: SandboxRequest) -> SandboxModel:
        if request.snapshot is not None:
            pausing = self._manager.pausing
            return await self.embedded.call(
                pausing.create_from_snapshot(
                    self._owner, request.snapshot, request.name, request.spec(), request.kernel_id
                )
            )
        return await self.embedded.call(
            self._manager.create(self._owner, request.name, request.spec(), kernel_id=request.kernel_id)
        )

    async def pause(self, key: str) -> SandboxModel:
        return await self.embedded.call(self._manager.pausing.pause(self._owner, key))

    async def resume(self, key: str) -> SandboxModel:
        return await self.embedded.call(self._manager.pausing.resume(self._owner, key))

    async def fork(self, key: str, name: str | None) -> SandboxModel:
        return await self.embedded.call(self._manager.pausing.fork(self._owner, key, name))

    async def snapshot(self, key: str, name: str) -> SnapshotModel:
        return await self.embedded.call(self._manager.pausing.snapshot(self._owner, key, name))

    async def list_snapshots(self) -> builtins.list[SnapshotModel]:
        return self._manager.pausing.list_snapshots(self._owner)

    async def delete_snapshot(self, name: str) -> None:
        self._manager.pausing.delete_snapshot(self._owner, name)

    async def get(self, key: str) -> SandboxModel:
        return self._manager.get(self._owner, key)

    async def list_volumes(self) -> builtins.list[VolumeModel]:
        return await self.embedded.call(self._manager.volumes.list(self._owner))

    async def create_volume(self, request: VolumeRequest) -> VolumeModel:
        return await self.embedded.call(self._manager.volumes.create(self._owner, request.name, request.size))

    async def get_volume(self, name: str) -> VolumeModel:
        return await self.embedded.call(self._manager.volumes.get(self._owner, name))

    async def remove_volume(self, name: str) -> None:
        await self.embedded.call(self._manager.volumes.remove(self._owner, name))

    async def remove(self, key: str) -> None:
        await self.embedded.call(self._manager.remove(self._owner, key))

    async def restart(self, key: str) -> SandboxModel:
        return await self.embedded.call(self._manager.restart(self._owner, key))

    async def interrupt(self, key: str) -> None:
        await self.embedded.call(self._manager.interrupt(self._owner, key))

    async def stats(self, key: str) -> dict[str, Any]:
        return await self.embedded.call(self._manager.stats(self._owner, key))

    async def list_contexts(self, key: str) -> builtins.list[ContextModel]:
        return await self.embedded.call(self._manager.list_contexts(self._owner, key))

    async def create_context(self, key: str, language: str | None, cwd: str | None) -> ContextModel:
        return await self.embedded.call(self._manager.create_context(self._owner, key, language=language, cwd=cwd))

    async def remove_context(self, key: str, context_id: str) -> None:
        await self.embedded.call(self._manager.remove_context(self._owner, key, context_id))

    async def restart_context(self, key: str, context_id: str) -> ContextModel:
        return await self.embedded.call(self._manager.restart_context(self._owner, key, context_id))

    async def _relay(self, run: Callable[[EventSink], Coroutine[Any, Any, None]], on_event: EventSink) -> None:
        """``run(sink)`` on the manager's loop, each event it sinks handed to ``on_event`` on the
        caller's loop; cancelling the caller cancels ``run``."""
        caller = asyncio.get_running_loop()
        manager_loop = self.embedded.loop
        if caller is manager_loop.loop:
            await run(on_event)
            return
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def hand_over(event: dict[str, Any]) -> None:
            caller.call_soon_threadsafe(events.put_nowait, event)

        done = asyncio.ensure_future(manager_loop.run_async(run(hand_over)))
        done.add_done_callback(lambda _: events.put_nowait(None))
        try:
            while (event := await events.get()) is not None:
                await maybe_await(on_event(event))
            await done
        finally:
            done.cancel()  # the caller left early (cancelled, or its callback failed)

    async def execute(self, key: str, request: ExecuteRequest, on_event: EventSink) -> None:
        async def run(sink: EventSink) -> None:
            await self._manager.execute(self._owner, key, request.code, on_event=sink, **request.options())

        await self._relay(run, on_event)

    async def answer_input(self, key: str, context_id: str, reply: InputReply) -> None:
        async def answer() -> None:
            self._manager.answer_input(self._owner, key, context_id, value=reply.value, error=reply.error)

        await self.embedded.call(answer())

    async def write_file(self, key: str, path: str, data: bytes) -> None:
        await self.embedded.call(self._manager.write_file(self._owner, key, path, data))

    async def read_file(self, key: str, path: str) -> bytes:
        return await self.embedded.call(self._manager.read_file(self._owner, key, path))

    async def list_files(self, key: str, path: str) -> builtins.list[dict[str, Any]]:
        return await self.embedded.call(self._manager.list_files(self._owner, key, path))

    async def remove_file(self, key: str, path: str) -> None:
        await self.embedded.call(self._manager.remove_file(self._owner, key, path))

    # -- E2B's filesystem and commands (core/commands.py, as the REST routes use it)
    @property
    def _commands(self) -> SandboxCommands:
        return SandboxCommands(self._manager)

    async def list_tree(self, key: str, path: str, depth: int) -> builtins.list[dict[str, Any]]:
        manager = self._manager
        return await self.embedded.call(manager.files.tree(manager.registry.use(self._owner, key), path, depth))

    async def file_info(self, key: str, path: str) -> dict[str, Any]:
        manager = self._manager
        return await self.embedded.call(manager.files.stat(manager.registry.use(self._owner, key), path))

    async def make_dir(self, key: str, path: str) -> dict[str, Any]:
        manager = self._manager
        return await self.embedded.call(manager.files.make_dir(manager.registry.use(self._owner, key), path))

    async def move_file(self, key: str, source: str, destination: str) -> dict[str, Any]:
        manager = self._manager
        sandbox = manager.registry.use(self._owner, key)
        return await self.embedded.call(manager.files.move(sandbox, source, destination))

    async def watch_dir(self, key: str, path: str, recursive: bool, on_event: EventSink) -> None:
        async def run(sink: EventSink) -> None:
            watch = await self._commands.watch(self._owner, key, path, recursive)
            try:
                async for event in watch_events(watch):
                    await maybe_await(sink(event))
            finally:
                await watch.close()

        await self._relay(run, on_event)

    async def run_command(self, key: str, request: CommandRequest, on_event: EventSink) -> None:
        async def run(sink: EventSink) -> None:
            stream = await self._commands.start(self._owner, key, request)
            async for event in command_events(stream):
                await maybe_await(sink(event))

        await self._relay(run, on_event)

    async def connect_command(self, key: str, pid: int, on_event: EventSink) -> None:
        async def run(sink: EventSink) -> None:
            async for event in command_events(self._commands.find(self._owner, key, pid)):
                await maybe_await(sink(event))

        await self._relay(run, on_event)

    async def list_commands(self, key: str) -> builtins.list[dict[str, Any]]:
        return [command_info(s) for s in self._commands.list(self._owner, key)]

    async def kill_command(self, key: str, pid: int) -> None:
        await self.embedded.call(self._commands.kill(self._owner, key, pid))

    async def send_stdin(self, key: str, pid: int, data: str) -> None:
        await self.embedded.call(self._commands.send_stdin(self._owner, key, pid, data.encode()))

    async def set_timeout(self, key: str, seconds: int) -> SandboxModel:
        async def set_it() -> SandboxModel:
            return self.embedded.deadlines().set(self._owner, key, seconds)

        return await self.embedded.call(set_it())


def embedded_connection() -> EmbeddedConnection:
    """A connection to this process's embedded manager (it keeps no state of its own)."""
    return EmbeddedConnection(embedded_manager())
