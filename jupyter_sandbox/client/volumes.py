"""Persistent volumes from the client (issue 23): ``Volume.list()``, ``Volume.create(name, size)``,
``Volume.get(name)``, ``Volume.remove(name)`` (blocking) and ``AsyncVolume`` (asyncio). A sandbox
mounts one with ``Sandbox(volume=name)`` (``volume_read_only=True`` for a read-only mount), at the
server's volume path (``/home/user/persist`` by default).
"""

from __future__ import annotations

import builtins

from ..models import VolumeModel, VolumeRequest
from .connection import Connection
from .discovery import connect
from .loop import private_loop
from .sandbox import _connect


class AsyncVolume:
    """The caller's volumes on the server, for asyncio (each call: ``server_url``, ``token`` optional)."""

    @staticmethod
    async def list(
        *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> builtins.list[VolumeModel]:
        return await (_connection or await _connect(server_url, token)).list_volumes()

    @staticmethod
    async def create(
        name: str,
        size: str | int | None = None,
        *,
        server_url: str | None = None,
        token: str | None = None,
        _connection: Connection | None = None,
    ) -> VolumeModel:
        """A new empty volume of ``size`` (e.g. "1G"; the server's default when None)."""
        connection = _connection or await _connect(server_url, token)
        return await connection.create_volume(VolumeRequest(name=name, size=size))

    @staticmethod
    async def get(
        name: str, *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> VolumeModel:
        """One volume, with its usage (``used``, ``capacity``)."""
        return await (_connection or await _connect(server_url, token)).get_volume(name)

    @staticmethod
    async def remove(
        name: str, *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> None:
        """Delete a volume and its files (refused while a sandbox mounts it)."""
        await (_connection or await _connect(server_url, token)).remove_volume(name)


class Volume:
    """The caller's volumes on the server (blocking calls)."""

    @staticmethod
    def list(
        *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> builtins.list[VolumeModel]:
        return private_loop().run((_connection or connect(server_url, token)).list_volumes())

    @staticmethod
    def create(
        name: str,
        size: str | int | None = None,
        *,
        server_url: str | None = None,
        token: str | None = None,
        _connection: Connection | None = None,
    ) -> VolumeModel:
        connection = _connection or connect(server_url, token)
        return private_loop().run(connection.create_volume(VolumeRequest(name=name, size=size)))

    @staticmethod
    def get(
        name: str, *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> VolumeModel:
        return private_loop().run((_connection or connect(server_url, token)).get_volume(name))

    @staticmethod
    def remove(
        name: str, *, server_url: str | None = None, token: str | None = None, _connection: Connection | None = None
    ) -> None:
        private_loop().run((_connection or connect(server_url, token)).remove_volume(name))
