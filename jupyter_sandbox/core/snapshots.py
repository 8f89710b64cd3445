"""Where the archives of sandboxes' working directories are kept on the server (issue 23): each
owner's named snapshots, capped in size per owner, and the files of paused sandboxes whose memory
is not kept (until they resume).

An archive is a tar the sandbox itself made (``SandboxBackend.pack_files``): the server stores its
bytes and hands them back to another sandbox's ``unpack_files``; it never opens or extracts one.
The folder is private (0700, core/identity.py's ``private_dir``): the server's state folder's
``snapshots`` by default, a fresh temporary folder for a manager with no state folder. Each owner
has a folder named by a hash of their name (any name is safe as a path), holding
``<snapshot>.tar`` and ``<snapshot>.json`` (its SnapshotModel); paused sandboxes' archives are in
``paused/<sandbox id>.tar``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator

from ..errors import AlreadyExists, NotFound, QuotaExceeded
from ..models import SandboxSpec, SnapshotModel, format_size, human_size, now, validate_name
from .identity import private_dir

CHUNK = 1 << 20  # bytes read from an archive at once
PAUSED_MARGIN = 64 * 1024**2  # tar's headers of many small files, beyond twice the disk


class ArchiveStore:
    """The snapshots of every owner and the files of paused sandboxes, under ``folder``."""

    def __init__(self, folder: str | None = None) -> None:
        self._folder = folder

    @property
    def folder(self) -> str:
        if self._folder is None:  # no state folder (a manager made alone): gone with the machine's temp dir
            self._folder = tempfile.mkdtemp(prefix="jsbx-snapshots-")
        return private_dir(self._folder)

    @folder.setter
    def folder(self, folder: str) -> None:
        self._folder = folder

    def _owner_dir(self, owner: str) -> str:
        return private_dir(os.path.join(self.folder, hashlib.sha256(owner.encode()).hexdigest()[:32]))

    def _paths(self, owner: str, name: str) -> tuple[str, str]:
        base = os.path.join(self._owner_dir(owner), validate_name(name))
        return base + ".tar", base + ".json"

    # -- snapshots ------------------------------------------------------------------------
    def list(self, owner: str) -> list[SnapshotModel]:
        """The owner's snapshots, oldest first (another owner's are never seen)."""
        found = []
        folder = self._owner_dir(owner)
        for entry in sorted(os.listdir(folder)):
            if entry.endswith(".json"):
                try:
                    found.append(self.get(owner, entry[: -len(".json")]))
                except NotFound:
                    continue  # being written or removed
        return sorted(found, key=lambda s: s.created)

    def get(self, owner: str, name: str) -> SnapshotModel:
        _, meta = self._paths(owner, name)
        try:
            with open(meta, encoding="utf-8") as f:
                return SnapshotModel.from_dict(json.load(f))
        except (OSError, ValueError, KeyError, TypeError):
            raise NotFound(f"no snapshot {name!r}") from None

    def used(self, owner: str) -> int:
        """Bytes the owner's snapshots take."""
        return sum(s.size for s in self.list(owner))

    async def save(
        self, owner: str, name: str, source: str, spec: SandboxSpec, chunks: AsyncIterator[bytes], cap: int
    ) -> SnapshotModel:
        """Keep ``chunks`` (a sandbox's archive) as the owner's snapshot ``name``; QuotaExceeded when
        the owner's snapshots would pass ``cap`` bytes (0: no cap), and nothing is kept then."""
        archive, meta = self._paths(owner, name)
        if os.path.exists(meta):
            raise AlreadyExists(f"you already have a snapshot named {name!r}; delete it first")
        room = cap - self.used(owner) if cap > 0 else None
        size = await _write(
            archive, chunks, room, f"the snapshot does not fit: your snapshots may take {format_size(cap)} together"
        )
        snapshot = SnapshotModel(name=name, owner=owner, created=now(), size=size, source=source, spec=spec)
        tmp = meta + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w") as f:
            json.dump(snapshot.to_dict(), f)
        os.replace(tmp, meta)
        return snapshot

    def chunks(self, owner: str, name: str) -> AsyncIterator[bytes]:
        """The snapshot's archive (NotFound for a name the owner has no snapshot of)."""
        self.get(owner, name)
        return _read(self._paths(owner, name)[0])

    def delete(self, owner: str, name: str) -> None:
        self.get(owner, name)
        for path in reversed(self._paths(owner, name)):  # its model first: it is gone from lists at once
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- paused sandboxes' files ----------------------------------------------------------
    def _paused(self, sandbox_id: str) -> str:
        if "/" in sandbox_id or sandbox_id.startswith("."):
            raise ValueError(f"not a sandbox id: {sandbox_id!r}")
        return os.path.join(private_dir(os.path.join(self.folder, "paused")), f"{sandbox_id}.tar")

    async def save_paused(self, sandbox_id: str, chunks: AsyncIterator[bytes], disk: int) -> int:
        """Keep a paused sandbox's files; the bytes kept. The archive comes out of the sandbox, so it
        is held to what its ``disk`` can hold (twice, for tar's headers, plus a margin), not trusted
        to be: a forged endless one would otherwise fill the server's disk."""
        most = 2 * disk + PAUSED_MARGIN
        return await _write(
            self._paused(sandbox_id), chunks, most, f"the sandbox's files are more than it can hold, {human_size(most)}"
        )

    def paused_chunks(self, sandbox_id: str) -> AsyncIterator[bytes]:
        return _read(self._paused(sandbox_id))

    def has_paused(self, sandbox_id: str) -> bool:
        return os.path.exists(self._paused(sandbox_id))

    def drop_paused(self, sandbox_id: str) -> None:
        try:
            os.unlink(self._paused(sandbox_id))
        except FileNotFoundError:
            pass


async def _write(path: str, chunks: AsyncIterator[bytes], room: int | None, why: str) -> int:
    """``chunks`` into ``path`` (written whole: a temp file renamed); QuotaExceeded past ``room`` bytes."""
    tmp = path + ".tmp"
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if room is not None and size > room:
                    raise QuotaExceeded(f"{why} ({human_size(max(room, 0))} left)")
                await asyncio.to_thread(f.write, chunk)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return size


async def _read(path: str) -> AsyncIterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
