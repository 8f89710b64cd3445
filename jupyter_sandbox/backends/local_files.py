"""The local backend's envd filesystem operations, on the host, inside a sandbox's home.

A sandbox path maps into the sandbox's private home; the folders on the way must stay inside it
once every link is resolved, and the last part of a path is never followed (a link is described,
moved or removed, not what it points at), so no host file outside the home is reached.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import AlreadyExists, InvalidInput, NotADirectory, NotFound
from .base import WORKDIR, confine
from .dir_watch import DirWatch, HostPollingWatch
from .programs.files import info, tree


def _inside(home: str, host: str) -> bool:
    real_home = os.path.realpath(home)
    return host == real_home or host.startswith(real_home + os.sep)


def host_entry(home: str, path: str) -> tuple[str, str]:
    """(the host path, the sandbox path) of an entry, its last part not followed."""
    inner = confine(path)
    host = os.path.join(home, os.path.relpath(inner, WORKDIR)) if inner != WORKDIR else home
    if not _inside(home, os.path.realpath(os.path.dirname(host)) if inner != WORKDIR else os.path.realpath(host)):
        raise InvalidInput(f"path {path!r} leads outside the sandbox", field="path")
    return host, inner


def host_dir(home: str, path: str) -> tuple[str, str]:
    """(the host path, the sandbox path) of a directory, which must be one, inside the home."""
    host, inner = host_entry(home, path)
    if not _inside(home, os.path.realpath(host)):
        raise InvalidInput(f"path {path!r} leads outside the sandbox", field="path")
    if not os.path.exists(host):
        raise NotFound(f"no such directory: {inner}")
    if not os.path.isdir(host):
        raise NotADirectory(f"not a directory: {inner}", field="path")
    return host, inner


async def stat_file(home: str, path: str) -> dict[str, Any]:
    host, inner = host_entry(home, path)
    if not os.path.lexists(host):
        raise NotFound(f"no such file or directory: {inner}")
    return await asyncio.to_thread(info, host, inner)


async def list_tree(home: str, path: str, depth: int) -> list[dict[str, Any]]:
    host, inner = host_dir(home, path)
    return await asyncio.to_thread(tree, host, max(1, depth), inner)


async def make_dir(home: str, path: str) -> dict[str, Any]:
    host, inner = host_entry(home, path)
    if os.path.lexists(host):
        raise AlreadyExists(f"{inner} exists already")
    try:
        os.makedirs(host)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectory(f"a folder on the way to {inner} is a file", field="path") from None
    return info(host, inner)


async def move_file(home: str, source: str, destination: str) -> dict[str, Any]:
    src, src_inner = host_entry(home, source)
    dst, dst_inner = host_entry(home, destination)
    if not os.path.lexists(src):
        raise NotFound(f"no such file or directory: {src_inner}")
    if src_inner == WORKDIR or dst_inner == WORKDIR:
        raise InvalidInput("the working directory itself cannot be moved or replaced", field="path")
    try:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(src, dst)
    except OSError as e:
        raise InvalidInput(f"cannot move {src_inner} to {dst_inner}: {e.strerror}", field="path") from None
    return info(dst, dst_inner)


async def watch_dir(home: str, path: str, recursive: bool) -> DirWatch:
    host, _ = host_dir(home, path)
    watch = HostPollingWatch(host, recursive)
    await watch.start()
    return watch
