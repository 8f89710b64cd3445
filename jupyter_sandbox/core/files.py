"""Files in sandboxes: writing, streaming, reading, listing, removing, moving and watching them through the backend,
each within its owner's share of transfers (one user's stuck transfers never hold up another's)."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator, Callable
from typing import Any

from ..backends.base import SandboxBackend
from ..backends.dir_watch import DirWatch
from ..errors import TooLarge
from ..models import format_size
from .sandbox import Sandbox


class FileTransfers:
    """File operations on sandboxes; at most ``per_user()`` of one owner's under way at once."""

    def __init__(self, backend: SandboxBackend, per_user: Callable[[], int]) -> None:
        self.backend = backend
        self.per_user = per_user
        self._slots: dict[str, asyncio.Semaphore] = {}

    def slot(self, owner: str) -> asyncio.Semaphore:
        """One user's share of file transfers."""
        return self._slots.setdefault(owner, asyncio.Semaphore(self.per_user()))

    async def write(self, sandbox: Sandbox, path: str, data: bytes) -> None:
        if len(data) > sandbox.model.spec.disk:
            raise TooLarge(
                f"{len(data)} bytes do not fit on the sandbox's disk of {format_size(sandbox.model.spec.disk)}"
            )
        async with self.slot(sandbox.model.owner):
            await self.backend.write_file(sandbox.model.id, path, data)

    async def stream(self, sandbox: Sandbox, path: str) -> AsyncGenerator[bytes, None]:
        async with self.slot(sandbox.model.owner):
            async for chunk in self.backend.stream_file(sandbox.model.id, path):
                yield chunk

    async def list(self, sandbox: Sandbox, path: str) -> list[dict[str, Any]]:
        async with self.slot(sandbox.model.owner):
            return await self.backend.list_files(sandbox.model.id, path)

    async def remove(self, sandbox: Sandbox, path: str) -> None:
        async with self.slot(sandbox.model.owner):
            await self.backend.remove_file(sandbox.model.id, path)

    # envd's filesystem (E2B's SDKs): the short ones share the owner's slots; a watch holds none
    # (it lasts as long as its client wants), and its caller closes it.
    async def stat(self, sandbox: Sandbox, path: str) -> dict[str, Any]:
        async with self.slot(sandbox.model.owner):
            return await self.backend.stat_file(sandbox.model.id, path)

    async def tree(self, sandbox: Sandbox, path: str, depth: int) -> builtins.list[dict[str, Any]]:
        async with self.slot(sandbox.model.owner):
            return await self.backend.list_tree(sandbox.model.id, path, depth)

    async def make_dir(self, sandbox: Sandbox, path: str) -> dict[str, Any]:
        async with self.slot(sandbox.model.owner):
            return await self.backend.make_dir(sandbox.model.id, path)

    async def move(self, sandbox: Sandbox, source: str, destination: str) -> dict[str, Any]:
        async with self.slot(sandbox.model.owner):
            return await self.backend.move_file(sandbox.model.id, source, destination)

    async def watch(self, sandbox: Sandbox, path: str, recursive: bool) -> DirWatch:
        return await self.backend.watch_dir(sandbox.model.id, path, recursive)
