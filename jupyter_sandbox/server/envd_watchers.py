"""envd's watchers without a stream (CreateWatcher, GetWatcherEvents, RemoveWatcher): E2B's sync SDK
polls them. Each holds a backend watch and keeps its events until they are asked for.

A watcher belongs to one owner's sandbox; another owner, or another sandbox, does not find it. One
not asked for in ``IDLE`` seconds, or whose directory or sandbox went away, is closed. A sandbox
has at most ``PER_SANDBOX`` watches at once (streams included): each holds a process there.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

from ..backends.dir_watch import Change, DirWatch
from ..errors import NotFound, QuotaExceeded

IDLE = 300.0  # seconds a watcher lives without being asked for its events
PER_SANDBOX = 8
MAX_EVENTS = 10000  # kept per watcher between two asks (older ones are dropped)
ASK_TIMEOUT = 10.0  # seconds GetWatcherEvents waits for the sandbox's look


@dataclass
class Watcher:
    owner: str
    sandbox_id: str
    path: str
    watch: DirWatch
    include_entry: bool = False
    events: list[Change] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    last_asked: float = field(default_factory=time.monotonic)
    ended: bool = False
    reader: asyncio.Task[None] | None = None


class Watchers:
    def __init__(self) -> None:
        self._watchers: dict[str, Watcher] = {}
        self._streams: dict[str, int] = {}  # sandbox id -> watch streams open

    def reserve(self, sandbox_id: str) -> None:
        """Counts a watch (a stream's, or a watcher's) against the sandbox's share; 429 over it."""
        held = self._streams.get(sandbox_id, 0) + sum(1 for w in self._watchers.values() if w.sandbox_id == sandbox_id)
        if held >= PER_SANDBOX:
            raise QuotaExceeded(f"a sandbox has at most {PER_SANDBOX} directory watches at once; stop one first")
        self._streams[sandbox_id] = self._streams.get(sandbox_id, 0) + 1

    def release(self, sandbox_id: str) -> None:
        left = self._streams.get(sandbox_id, 0) - 1
        if left > 0:
            self._streams[sandbox_id] = left
        else:
            self._streams.pop(sandbox_id, None)

    def add(self, owner: str, sandbox_id: str, path: str, watch: DirWatch, include_entry: bool) -> str:
        """A watcher of the reserved watch (the reservation becomes the watcher); its id."""
        self.release(sandbox_id)
        watcher_id = secrets.token_hex(8)
        watcher = Watcher(owner, sandbox_id, path, watch, include_entry)
        watcher.reader = asyncio.ensure_future(self._read(watcher_id, watcher))
        self._watchers[watcher_id] = watcher
        return watcher_id

    def get(self, owner: str, sandbox_id: str, watcher_id: str) -> Watcher:
        watcher = self._watchers.get(watcher_id)
        if watcher is None or watcher.owner != owner or watcher.sandbox_id != sandbox_id:
            raise NotFound(f"no watcher {watcher_id!r} in this sandbox (stopped, or idle over {IDLE:g} s)")
        return watcher

    async def events(self, owner: str, sandbox_id: str, watcher_id: str) -> list[Change]:
        """The events since the last ask, after the sandbox looked once more (every change made
        before the ask is in them)."""
        watcher = self.get(owner, sandbox_id, watcher_id)
        watcher.last_asked = time.monotonic()
        if not watcher.ended:
            watcher.answered.clear()
            watcher.watch.look_now()
            try:
                await asyncio.wait_for(watcher.answered.wait(), ASK_TIMEOUT)
            except asyncio.TimeoutError:
                pass  # a busy sandbox: what came so far
        found, watcher.events = watcher.events, []
        if watcher.ended:
            await self.remove(owner, sandbox_id, watcher_id)
        return found

    async def remove(self, owner: str, sandbox_id: str, watcher_id: str) -> None:
        watcher = self.get(owner, sandbox_id, watcher_id)
        await self._close(watcher_id, watcher)

    async def _close(self, watcher_id: str, watcher: Watcher) -> None:
        self._watchers.pop(watcher_id, None)
        if watcher.reader is not None and watcher.reader is not asyncio.current_task():
            watcher.reader.cancel()
            await asyncio.gather(watcher.reader, return_exceptions=True)
        await watcher.watch.close()

    async def _read(self, watcher_id: str, watcher: Watcher) -> None:
        while True:
            try:
                batch = await asyncio.wait_for(watcher.watch.next(), 30)
            except asyncio.TimeoutError:
                if time.monotonic() - watcher.last_asked > IDLE:
                    await self._close(watcher_id, watcher)
                    return
                continue
            watcher.events += batch.changes
            del watcher.events[:-MAX_EVENTS]
            if batch.asked or batch.last:
                watcher.answered.set()
            if batch.last:
                watcher.ended = True  # its last events are still to be asked for, for a while
                await asyncio.sleep(IDLE)
                if self._watchers.get(watcher_id) is watcher:
                    await self._close(watcher_id, watcher)
                return

    async def close_all(self) -> None:
        for watcher_id, watcher in list(self._watchers.items()):
            await self._close(watcher_id, watcher)
