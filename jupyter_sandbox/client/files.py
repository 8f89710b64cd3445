"""``sandbox.files``: E2B's filesystem API for the project client, async (``AsyncFiles``) and
blocking (``Files``): read, write, list (with depth), exists, get_info, make_dir, rename, remove,
and ``watch_dir``.

Paths are the sandbox's: relative to its working directory /home/user, or absolute inside it.
Entries come back as ``EntryInfo`` and watch events as ``FilesystemEvent``, with E2B's names.
``AsyncFiles.watch_dir`` calls ``on_event`` on the caller's loop; ``Files.watch_dir`` calls it on
a thread of its own (as run_code's callbacks come from elsewhere than the caller), and keeps the
events for ``get_new_events()`` too, the way E2B's blocking SDK polls them.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
import enum
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound, SandboxError
from .connection import Event, maybe_await
from .loop import blocking, private_loop

if TYPE_CHECKING:
    from .sandbox import AsyncSandbox


class FileType(str, enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


class FilesystemEventType(str, enum.Enum):
    """What happened to an entry of a watched directory (E2B's values)."""

    CHMOD = "chmod"
    CREATE = "create"
    REMOVE = "remove"
    RENAME = "rename"
    WRITE = "write"


@dataclass
class EntryInfo:
    name: str
    type: FileType | None
    path: str
    size: int = 0
    mode: int = 0
    permissions: str = ""
    owner: str = ""
    group: str = ""
    modified_time: datetime.datetime | None = None
    symlink_target: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntryInfo:
        kind = data.get("type")
        modified = data.get("modified")
        return cls(
            name=data["name"],
            type=FileType(kind) if kind in FileType._value2member_map_ else None,
            path=data["path"],
            size=data.get("size", 0),
            mode=data.get("mode", 0),
            permissions=data.get("permissions", ""),
            owner=data.get("owner", ""),
            group=data.get("group", ""),
            modified_time=None
            if modified is None
            else datetime.datetime.fromtimestamp(modified, datetime.timezone.utc),
            symlink_target=data.get("symlink_target"),
        )


@dataclass
class WriteEntry:
    """One file of ``write_files``."""

    path: str
    data: str | bytes


@dataclass
class WriteInfo:
    name: str
    type: FileType | None
    path: str


@dataclass
class FilesystemEvent:
    name: str  # below the watched directory
    type: FilesystemEventType


EventCallback = Callable[[FilesystemEvent], Any]


class AsyncWatchHandle:
    """A running watch; ``stop()`` ends it."""

    def __init__(self, task: asyncio.Task[None]):
        self._task = task

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return not self._task.done()


class AsyncFiles:
    """``sandbox.files`` of an ``AsyncSandbox``."""

    def __init__(self, sandbox: AsyncSandbox):
        self._sandbox = sandbox

    @property
    def _key(self) -> str:
        return self._sandbox.id

    async def read(self, path: str, format: str = "text") -> str | bytes:
        """A file's content: text (``format="text"``) or bytes (``"bytes"``)."""
        data = await self._sandbox.connection.read_file(self._key, path)
        return data if format == "bytes" else data.decode()

    async def write(self, path: str | builtins.list[WriteEntry], data: str | bytes = b"") -> Any:
        """Write a file (its parents are made); a list of WriteEntry writes each (E2B 1.x's form)."""
        if isinstance(path, builtins.list):
            return await self.write_files(path)
        payload = data.encode() if isinstance(data, str) else data
        await self._sandbox.connection.write_file(self._key, path, payload)
        info = await self.get_info(path)
        return WriteInfo(info.name, info.type, info.path)

    async def write_files(self, files: builtins.list[WriteEntry]) -> builtins.list[WriteInfo]:
        return [await self.write(entry.path, entry.data) for entry in files]

    async def list(self, path: str = ".", depth: int = 1) -> builtins.list[EntryInfo]:
        """The entries of a directory, ``depth`` levels down (each directory before what it holds)."""
        return [EntryInfo.from_dict(e) for e in await self._sandbox.connection.list_tree(self._key, path, depth)]

    async def get_info(self, path: str) -> EntryInfo:
        return EntryInfo.from_dict(await self._sandbox.connection.file_info(self._key, path))

    async def exists(self, path: str) -> bool:
        try:
            await self._sandbox.connection.file_info(self._key, path)
        except NotFound:
            return False
        return True

    async def make_dir(self, path: str) -> bool:
        """Make a directory and its parents; False when the path exists already."""
        try:
            await self._sandbox.connection.make_dir(self._key, path)
        except Conflict:  # AlreadyExists, a 409 over HTTP
            return False
        return True

    async def rename(self, old_path: str, new_path: str) -> EntryInfo:
        return EntryInfo.from_dict(await self._sandbox.connection.move_file(self._key, old_path, new_path))

    async def remove(self, path: str) -> None:
        await self._sandbox.connection.remove_file(self._key, path)

    async def watch_dir(self, path: str, on_event: EventCallback, recursive: bool = False) -> AsyncWatchHandle:
        """Watch a directory: ``on_event(FilesystemEvent)`` for each change from now until
        ``stop()`` (or until the directory goes). Returns once the watch runs."""
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def sink(event: Event) -> None:
            if event.get("type") == "start" and not started.done():
                started.set_result(None)
            elif event.get("type") == "event":
                await maybe_await(on_event(FilesystemEvent(event["name"], FilesystemEventType(event["kind"]))))

        task = asyncio.ensure_future(self._sandbox.connection.watch_dir(self._key, path, recursive, sink))
        first: set[asyncio.Future[Any]] = {started, task}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            task.result()  # its error (404, 429...)
            raise SandboxError(f"the watch of {path!r} ended before it started")
        return AsyncWatchHandle(task)


class WatchHandle:
    """A running watch of the blocking client: events go to ``on_event`` on the handle's thread,
    and are kept for ``get_new_events()``; ``stop()`` ends it."""

    def __init__(self, files: AsyncFiles, path: str, on_event: EventCallback | None, recursive: bool):
        self._events: queue.SimpleQueue[FilesystemEvent | None] = queue.SimpleQueue()
        self._new: builtins.list[FilesystemEvent] = []
        self._lock = threading.Lock()
        self._on_event = on_event
        self.error: BaseException | None = None  # what ended the thread's callbacks, if anything
        self._async = private_loop().run(files.watch_dir(path, self._events.put, recursive))
        self._thread = threading.Thread(target=self._dispatch, name="jupyter-sandbox-watch", daemon=True)
        self._thread.start()

    def _dispatch(self) -> None:
        while (event := self._events.get()) is not None:
            with self._lock:
                self._new.append(event)
            if self._on_event is not None and self.error is None:
                try:
                    self._on_event(event)
                except BaseException as e:  # kept for the caller: stop() raises it
                    self.error = e

    def get_new_events(self) -> builtins.list[FilesystemEvent]:
        """The events since the last call."""
        with self._lock:
            new, self._new = self._new, []
        return new

    def stop(self) -> None:
        """End the watch; the error an ``on_event`` call raised, if one did."""
        private_loop().run(self._async.stop())
        self._events.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


def _blocking(name: str) -> Callable[..., Any]:
    return blocking(name, AsyncFiles)


class Files:
    """``sandbox.files`` of a ``Sandbox`` (see ``AsyncFiles``)."""

    def __init__(self, files: AsyncFiles):
        self._async = files

    read = _blocking("read")
    write = _blocking("write")
    write_files = _blocking("write_files")
    list = _blocking("list")
    get_info = _blocking("get_info")
    exists = _blocking("exists")
    make_dir = _blocking("make_dir")
    rename = _blocking("rename")
    remove = _blocking("remove")

    def watch_dir(self, path: str, on_event: EventCallback | None = None, recursive: bool = False) -> WatchHandle:
        """Watch a directory; ``on_event`` is called on the handle's own thread (see WatchHandle)."""
        return WatchHandle(self._async, path, on_event, recursive)
