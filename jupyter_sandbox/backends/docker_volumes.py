"""Persistent volumes for Docker sandboxes (issue 23): the host's size-limited filesystems
(volume_images.py) bind-mounted into containers at the backend's ``volume_path``.

Every sandbox that mounts a volume runs as that volume's uid pair (chosen by the volume's id,
as a sandbox's own pair is chosen by its id: docker_containers.uid_pair): so its files are
writable from each of the owner's sandboxes that mount it, and still no host account's.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from docker.types import Mount
from jupyter_core.paths import jupyter_data_dir

from ..errors import BackendUnavailable, NotFound, SandboxError
from ..models import SandboxSpec
from .base import LABEL_PREFIX
from .volume_images import VolumeImages, VolumeUsage, volume_id, volumes_problem

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend


class DockerVolumes:
    """One backend's volumes: made, mounted into its containers, measured, removed."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend
        self._images: VolumeImages | None = None
        self._volume_of: dict[str, str] = {}  # sandbox id -> the id of the volume it mounts
        self._problem: str | bool | None = False  # False: not checked yet

    @property
    def images(self) -> VolumeImages:
        if self._images is None:
            root = self.backend.volume_dir or os.path.join(jupyter_data_dir(), "jupyter_sandbox", "volumes")
            self._images = VolumeImages(root)
        return self._images

    def problem(self) -> str | None:
        if self._problem is False:
            self._problem = volumes_problem()
        return self._problem if isinstance(self._problem, str) else None

    def require(self) -> None:
        problem = self.problem()
        if problem:
            raise BackendUnavailable(problem)

    def uid_key(self, sandbox_id: str) -> str:
        """What a sandbox's uid pair is chosen by: the volume it mounts, else its own id."""
        return self._volume_of.get(sandbox_id, sandbox_id)

    def _owner_ids(self, vid: str) -> tuple[int, int]:
        uid, _, gid = self.backend.containers.ids(vid)[0].partition(":")
        return int(uid), int(gid)

    async def create(self, owner: str, name: str, size: int) -> dict[str, Any]:
        self.require()
        return await asyncio.to_thread(self.images.create, owner, name, size, *self._owner_ids(volume_id(owner, name)))

    async def metas(self) -> list[dict[str, Any]]:
        if self.problem():
            return []
        return await asyncio.to_thread(self.images.all_meta)

    async def usage(self, vid: str) -> VolumeUsage | None:
        if self.problem():
            return None
        try:  # measured where it is mounted
            await asyncio.to_thread(self.images.attach, vid, *self._owner_ids(vid))
        except SandboxError as e:  # one volume that cannot be mounted must not hide the others
            self.backend.log.warning("jupyter-sandbox: volume %s cannot be measured: %s", vid, e.message)
            return None
        return await asyncio.to_thread(self.images.usage, vid)

    async def remove(self, vid: str) -> None:
        self.require()
        await asyncio.to_thread(self.images.remove, vid)

    def _vid(self, spec: SandboxSpec, labels: dict[str, str]) -> str | None:
        return volume_id(labels[f"{LABEL_PREFIX}.owner"], spec.volume) if spec.volume else None

    async def mounts(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> list[Mount]:
        """The mount of the sandbox's volume (none when it asks for none), attached on the host first."""
        vid = self._vid(spec, labels)
        if vid is None:
            return []
        self.require()
        if self.images.meta(vid) is None:
            raise NotFound(f"you have no volume named {spec.volume!r}")
        point = await asyncio.to_thread(self.images.attach, vid, *self._owner_ids(vid))
        self._volume_of[sandbox_id] = vid
        return [Mount(self.backend.volume_path, point, type="bind", read_only=spec.volume_read_only)]

    def adopted(self, sandbox_id: str, spec: SandboxSpec, labels: dict[str, str]) -> None:
        """A restarted server's sandbox runs as its volume's uid, as when it was made."""
        vid = self._vid(spec, labels)
        if vid is not None:
            self._volume_of[sandbox_id] = vid

    def forget(self, sandbox_id: str) -> None:
        self._volume_of.pop(sandbox_id, None)

    async def close(self, sandboxes_left: bool) -> None:
        """Detach what this process mounted, unless sandboxes stay for the next start."""
        if self._images is not None and not sandboxes_left:
            await asyncio.to_thread(self._images.detach_all)
