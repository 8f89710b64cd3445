"""A watch on a sandbox's directory, as backends give it: batches of changes found by polling.

Each backend's watch compares snapshots of the directory (programs/files.py's ``snapshot`` and
``changes``) a few times a second, so it needs no inotify in the sandbox. ``next()`` waits for the
next batch; ``look_now()`` asks for a look at once, whose batch comes back marked ``asked`` (so a
caller can tell every change made before it asked has been seen).
"""

from __future__ import annotations

import abc
import asyncio
import os
from dataclasses import dataclass, field

from .programs.files import WATCH_INTERVAL, changes, snapshot

Change = tuple[str, str]  # (name below the watched directory, kind: create/write/remove/rename/chmod)


@dataclass
class Batch:
    changes: list[Change] = field(default_factory=list)
    asked: bool = False  # the answer to a look_now()
    last: bool = False  # the watch ended (the directory is gone, or the sandbox)


class DirWatch(abc.ABC):
    @abc.abstractmethod
    async def next(self) -> Batch:
        """The next batch; a ``last`` one ends the watch (later calls return it again)."""

    @abc.abstractmethod
    def look_now(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class QueueWatch(DirWatch):
    """A watch fed from elsewhere (a reader task) through a queue: ``next`` is safe to cancel."""

    def __init__(self) -> None:
        self.batches: asyncio.Queue[Batch] = asyncio.Queue()
        self.ended: Batch | None = None

    def put(self, batch: Batch) -> None:
        self.batches.put_nowait(batch)

    async def next(self) -> Batch:
        if self.ended is not None:
            return self.ended
        batch = await self.batches.get()
        if batch.last:
            self.ended = batch
        return batch


class HostPollingWatch(QueueWatch):
    """The local backend's: polls a host directory (never entering a link) in a thread."""

    def __init__(self, path: str, recursive: bool) -> None:
        super().__init__()
        self.path, self.recursive = path, recursive
        self._asked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        before = await asyncio.to_thread(snapshot, self.path, self.recursive)
        self._task = asyncio.ensure_future(self._poll(before))

    async def _poll(self, before: dict[str, tuple[int, int, int, int]]) -> None:
        while True:
            try:
                await asyncio.wait_for(self._asked.wait(), WATCH_INTERVAL)
            except asyncio.TimeoutError:
                pass
            asked = self._asked.is_set()
            self._asked.clear()
            if not await asyncio.to_thread(_is_dir, self.path):
                self.put(Batch([("", "remove")], asked, last=True))
                return
            after = await asyncio.to_thread(snapshot, self.path, self.recursive)
            found = [(name, kind) for name, kind in changes(before, after)]
            if found or asked:
                self.put(Batch(found, asked))
            before = after

    def look_now(self) -> None:
        self._asked.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _is_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)
