"""Persistent volumes (issue 23): each owner's named, size-limited filesystems, mounted in the
sandboxes whose spec names one. This module is their policy (sizes, how many, the default
volume) and their owners: a volume is its owner's alone, and another owner's is unknown (404).
The backend holds the filesystems themselves (backends/volume_images.py on Docker).

Configured as c.SandboxVolumes.*; the manager has one (``SandboxManager.volumes``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from traitlets import Bool, Instance, Int, Unicode
from traitlets.config import LoggingConfigurable

from ..backends.base import SandboxBackend
from ..backends.volume_images import MIN_SIZE
from ..errors import BackendUnavailable, Conflict, InvalidInput, NotFound, QuotaExceeded
from ..models import SandboxSpec, VolumeModel, format_size, human_size, parse_size, validate_name
from .registry import SandboxRegistry


class SandboxVolumes(LoggingConfigurable):
    """An owner's volumes: made, listed with their usage, mounted through specs, removed."""

    default_size = Unicode("1G", help="Size of a volume made without one (its limit: writes past it fail).").tag(
        config=True
    )
    max_size = Unicode("10G", help="Largest volume a user may make.").tag(config=True)
    max_volumes_per_user = Int(4, help="Volumes one user may have (429 beyond).").tag(config=True)
    default_volume = Unicode(
        "",
        help="The volume every sandbox mounts unless its spec says otherwise ('volume': '' for none), made "
        "on first use. '' = sandboxes mount none unless they ask.",
    ).tag(config=True)
    make_on_use = Bool(
        True, help="A sandbox that names a volume its owner does not have makes it (of default_size)."
    ).tag(config=True)

    backend = Instance(SandboxBackend)  # type: ignore[type-abstract]  # traitlets checks isinstance only
    registry = Instance(SandboxRegistry)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # one change at a time per owner

    def require(self) -> None:
        problem = self.backend.volumes_problem()
        if problem:
            raise BackendUnavailable(problem)

    def _users(self, owner: str, name: str) -> list[str]:
        """The owner's sandboxes that mount that volume."""
        return [s.model.id for s in self.registry.owned_by(owner) if s.model.spec.volume == name]

    async def _model(self, meta: dict[str, Any]) -> VolumeModel:
        usage = await self.backend.volume_usage(meta["id"])
        used, capacity = usage if usage is not None else (0, 0)
        return VolumeModel(
            name=meta["name"],
            owner=meta["owner"],
            size=int(meta["size"]),
            used=used,
            capacity=capacity,
            mount_path=self.backend.volume_path,
            created=float(meta.get("created", 0)),
            sandboxes=self._users(meta["owner"], meta["name"]),
            id=meta["id"],
        )

    async def _metas(self, owner: str) -> list[dict[str, Any]]:
        return [m for m in await self.backend.volume_metas() if m.get("owner") == owner and "name" in m]

    async def list(self, owner: str) -> list[VolumeModel]:
        """The owner's volumes with their usage (none where the backend has no volumes)."""
        return [await self._model(m) for m in await self._metas(owner)]

    async def get(self, owner: str, ref: str) -> VolumeModel:
        """The owner's volume by name or id; NotFound for anyone else's."""
        for meta in await self._metas(owner):
            if ref in (meta["name"], meta["id"]):
                return await self._model(meta)
        raise NotFound(f"you have no volume {ref!r}")

    async def create(self, owner: str, name: str, size: str | int | None = None) -> VolumeModel:
        """A new empty volume of the owner's (Conflict if the name is taken)."""
        self.require()
        validate_name(name)
        nbytes = parse_size(size if size is not None else self.default_size, "size")
        most = parse_size(self.max_size, "max_size")
        if nbytes > most:
            raise InvalidInput(
                f"size {format_size(nbytes)} is above this server's maximum of {self.max_size}", field="size"
            )
        if nbytes < MIN_SIZE:
            raise InvalidInput(f"size must be at least {human_size(MIN_SIZE)}", field="size")
        async with self._locks[owner]:
            mine = await self._metas(owner)
            if any(m["name"] == name for m in mine):
                raise Conflict(f"you already have a volume named {name!r}", field="name")
            if len(mine) >= self.max_volumes_per_user:
                raise QuotaExceeded(f"you have {len(mine)} volumes, the most this server allows; remove one first")
            meta = await self.backend.create_volume(owner, name, nbytes)
        self.log.info("jupyter-sandbox: made volume %s (%s) of %s", name, meta["id"], owner)
        return await self._model(meta)

    async def remove(self, owner: str, ref: str) -> None:
        """Delete the owner's volume and its files; Conflict while a sandbox mounts it."""
        volume = await self.get(owner, ref)
        async with self._locks[owner]:
            users = self._users(owner, volume.name)
            if users:
                raise Conflict(f"volume {volume.name!r} is mounted in sandbox {', '.join(users)}; remove those first")
            await self.backend.remove_volume(volume.id)
        self.log.info("jupyter-sandbox: removed volume %s (%s) of %s", volume.name, volume.id, owner)

    async def prepare(self, owner: str, spec: SandboxSpec) -> None:
        """Fill in the default volume, and make sure the one the spec names exists (made on first use)."""
        if spec.volume is None:
            spec.volume = self.default_volume
        if not spec.volume:  # none: the spec is the pool's again (None), read-only means nothing
            spec.volume, spec.volume_read_only = None, False
            return
        self.require()
        if not owner:
            raise InvalidInput("a sandbox with a volume needs an owner", field="volume")
        if any(m["name"] == spec.volume for m in await self._metas(owner)):
            return
        if not self.make_on_use:
            raise NotFound(f"you have no volume named {spec.volume!r}; make it first")
        try:
            await self.create(owner, spec.volume)
        except Conflict:
            pass  # made meanwhile by another create
