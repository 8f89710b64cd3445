"""envd's filesystem service (``filesystem.Filesystem``) on the E2B data plane, port 49983.

Stat, ListDir (with depth), MakeDir, Move, Remove, WatchDir (a server stream: a start event,
then the changes, a keepalive when nothing happens) and the stream-less watchers E2B's sync SDK
polls. Paths are the sandbox's (``/home/user/...``, or relative to it); one outside its working
directory is refused (400). Watches poll the directory (see backends/dir_watch.py).
"""

from __future__ import annotations

import asyncio
import datetime
import posixpath
from collections.abc import AsyncIterator
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from ..backends.base import confine
from ..core.sandbox import Sandbox
from ..errors import SandboxError
from . import envd_proto as pb
from .connect_rpc import ConnectHandler, ConnectService
from .e2b_plane import ENVD_PORT, E2BPlaneMixin, register
from .envd_watchers import Watchers

FILESYSTEM = ConnectService("filesystem.Filesystem")
KEEPALIVE = 20.0  # seconds of a quiet watch stream between two keepalive messages
WATCHERS_SETTING = "sandbox_e2b_watchers"
_TYPES = {"file": 1, "dir": 2, "symlink": 3}
_EVENTS = {"create": 1, "write": 2, "remove": 3, "rename": 4, "chmod": 5}


def entry_info(entry: dict[str, Any]) -> dict[str, Any]:
    """A backend's entry (programs/files.py's ``info``) as envd's EntryInfo."""
    info = {
        "name": entry["name"],
        "type": _TYPES.get(entry.get("type", ""), 0),
        "path": entry["path"],
        "size": entry.get("size", 0),
        "mode": entry.get("mode", 0),
        "permissions": entry.get("permissions", ""),
        "owner": entry.get("owner", ""),
        "group": entry.get("group", ""),
        "modified_time": datetime.datetime.fromtimestamp(entry.get("modified", 0), datetime.timezone.utc),
    }
    if entry.get("symlink_target") is not None:
        info["symlink_target"] = entry["symlink_target"]
    return info


def watchers(handler: web.RequestHandler) -> Watchers:
    """The server's watchers (one registry for every request: envd's and the project's watch route)."""
    found: Watchers = handler.settings.setdefault(WATCHERS_SETTING, Watchers())
    return found


async def close_watchers(settings: dict[str, Any]) -> None:
    """Stops every watcher (the server stops)."""
    registry: Watchers | None = settings.get(WATCHERS_SETTING)
    if registry is not None:
        await registry.close_all()


@register(ENVD_PORT, FILESYSTEM.template)
class FilesystemHandler(ConnectHandler, E2BPlaneMixin):
    """Authenticated by E2BPlaneMixin.prepare (before the body is read); acts as the sandbox's owner."""

    service = FILESYSTEM

    @allow_unauthenticated  # the plane's own authentication (e2b_plane.py), in prepare
    async def post(self, method: str) -> None:
        await super().post(method)

    def sandbox(self) -> Sandbox:
        return self.manager.registry.use(self.owner, self.sandbox_id)

    async def event(self, path: str, name: str, kind: str, with_entry: bool) -> dict[str, Any]:
        event: dict[str, Any] = {"name": name, "type": _EVENTS.get(kind, 0)}
        if with_entry and kind not in ("remove", "rename"):
            try:
                entry = await self.manager.files.stat(self.sandbox(), posixpath.join(path, name))
                event["entry"] = entry_info(entry)
            except SandboxError:
                pass  # gone again since: the event goes without it, as envd's does
        return event


@FILESYSTEM.unary("Stat", pb.STAT_REQUEST, pb.STAT_RESPONSE)
async def stat(handler: FilesystemHandler, request: dict[str, Any]) -> dict[str, Any]:
    return {"entry": entry_info(await handler.manager.files.stat(handler.sandbox(), request["path"]))}


@FILESYSTEM.unary("ListDir", pb.LIST_DIR_REQUEST, pb.LIST_DIR_RESPONSE)
async def list_dir(handler: FilesystemHandler, request: dict[str, Any]) -> dict[str, Any]:
    entries = await handler.manager.files.tree(handler.sandbox(), request["path"], max(1, request["depth"]))
    return {"entries": [entry_info(e) for e in entries]}


@FILESYSTEM.unary("MakeDir", pb.MAKE_DIR_REQUEST, pb.MAKE_DIR_RESPONSE)
async def make_dir(handler: FilesystemHandler, request: dict[str, Any]) -> dict[str, Any]:
    return {"entry": entry_info(await handler.manager.files.make_dir(handler.sandbox(), request["path"]))}


@FILESYSTEM.unary("Move", pb.MOVE_REQUEST, pb.MOVE_RESPONSE)
async def move(handler: FilesystemHandler, request: dict[str, Any]) -> dict[str, Any]:
    entry = await handler.manager.files.move(handler.sandbox(), request["source"], request["destination"])
    return {"entry": entry_info(entry)}


@FILESYSTEM.unary("Remove", pb.REMOVE_REQUEST, pb.REMOVE_RESPONSE)
async def remove(handler: FilesystemHandler, request: dict[str, Any]) -> dict[str, Any]:
    await handler.manager.files.remove(handler.sandbox(), request["path"])
    return {}


@FILESYSTEM.stream("WatchDir", pb.WATCH_DIR_REQUEST, pb.WATCH_DIR_RESPONSE)
async def watch_dir(handler: FilesystemHandler, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    path = confine(request["path"])
    registry = watchers(handler)
    registry.reserve(handler.sandbox_id)
    try:
        watch = await handler.manager.files.watch(handler.sandbox(), path, request["recursive"])
        try:
            yield {"start": {}}
            quiet = 0.0
            while not handler.client_gone.is_set():
                try:
                    batch = await asyncio.wait_for(watch.next(), 1.0)
                except asyncio.TimeoutError:
                    quiet += 1.0
                    if quiet >= KEEPALIVE:
                        quiet = 0.0
                        yield {"keepalive": {}}
                    continue
                quiet = 0.0
                for name, kind in batch.changes:
                    yield {"filesystem": await handler.event(path, name, kind, request["include_entry"])}
                if batch.last:
                    return
        finally:
            await watch.close()
    finally:
        registry.release(handler.sandbox_id)


@FILESYSTEM.unary("CreateWatcher", pb.CREATE_WATCHER_REQUEST, pb.CREATE_WATCHER_RESPONSE)
async def create_watcher(handler: FilesystemHandler, request: dict[str, Any]) -> dict[str, Any]:
    path = confine(request["path"])
    registry = watchers(handler)
    registry.reserve(handler.sandbox_id)
    try:
        watch = await handler.manager.files.watch(handler.sandbox(), path, request["recursive"])
    except BaseException:
        registry.release(handler.sandbox_id)
        raise
    watcher_id = registry.add(handler.owner, handler.sandbox_id, path, watch, request["include_entry"])
    return {"watcher_id": watcher_id}


@FILESYSTEM.unary("GetWatcherEvents", pb.GET_WATCHER_EVENTS_REQUEST, pb.GET_WATCHER_EVENTS_RESPONSE)
async def get_watcher_events(handler: FilesystemHandler, request: dict[str, Any]) -> dict[str, Any]:
    registry = watchers(handler)
    watcher = registry.get(handler.owner, handler.sandbox_id, request["watcher_id"])
    found = await registry.events(handler.owner, handler.sandbox_id, request["watcher_id"])
    return {"events": [await handler.event(watcher.path, name, kind, watcher.include_entry) for name, kind in found]}


@FILESYSTEM.unary("RemoveWatcher", pb.REMOVE_WATCHER_REQUEST, pb.REMOVE_WATCHER_RESPONSE)
async def remove_watcher(handler: FilesystemHandler, request: dict[str, Any]) -> dict[str, Any]:
    await watchers(handler).remove(handler.owner, handler.sandbox_id, request["watcher_id"])
    return {}
