"""This server's identity: unique among live servers, and kept across its own restarts.

Two Jupyter servers of one user on one host share everything a hash could be made of
(host, user, runtime dir), so the id is not derived: it is a slot. Each slot is a folder
``servers/<id>/`` in the server's private state directory, and a running server holds an
exclusive ``flock`` on the slot's ``lock`` file for as long as its process lives (the kernel
drops the lock when the process dies, however it dies). A starting server:

- never touches a slot whose lock is held: that server is alive;
- takes over a free slot (its server is provably gone) that was started the same way (same
  host, root dir and base URL): that slot is its own earlier life, and the containers
  labelled with its id are its leftovers;
- otherwise makes a new slot with a random id.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import stat
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import StateDirError

_SLOT = re.compile(r"^[0-9a-f]{16}$")


_MAX_LINKS = 40  # as the kernel's path resolution: a loop of symlinks is refused, not followed forever


def _check_component(component: str, st: os.stat_result, path: str) -> None:
    """Only root or this user may own ``component`` and change what it holds (a sticky folder
    such as /tmp excepted: others cannot rename or remove what is ours in it)."""
    why = ""
    if st.st_uid not in (0, os.getuid()):
        why = f"it belongs to uid {st.st_uid}"
    elif stat.S_ISDIR(st.st_mode) and st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        why = f"its mode {stat.S_IMODE(st.st_mode):o} lets other users write in it"
    if why:
        raise StateDirError(
            f"{component}, on the way to the state folder {path}, is not safe: {why}, so another user could "
            "swap what the server keeps there. Fix its owner or mode, or choose another c.SandboxApp.state_dir"
        )


def check_path(path: str) -> None:
    """Every folder on the way to ``path`` and every symlink followed on it, from ``/`` down to its
    parent, passes ``_check_component``. Stops at the first part that does not exist yet (this user
    will make it). StateDirError names the part at fault."""
    todo = os.path.dirname(path).split("/")
    current, links = "/", 0
    _check_component(current, os.lstat(current), path)
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        nxt = os.path.join(current, part)
        try:
            st = os.lstat(nxt)
        except FileNotFoundError:
            return
        _check_component(nxt, st, path)
        if stat.S_ISLNK(st.st_mode):  # followed as the kernel would: its target is checked too
            links += 1
            if links > _MAX_LINKS:
                raise StateDirError(f"{path} has too many symbolic links on its way (a loop?)")
            target = os.readlink(nxt)
            todo = target.split("/") + todo
            if target.startswith("/"):
                current = "/"
            continue
        current = nxt


def private_dir(path: str) -> str:
    """``path`` as a directory only this user can enter, made if missing; never a symlink.

    Refuses (StateDirError) a path that exists but is a symlink, not a directory, or owned by
    someone else: another local user could have made it to read what the server keeps there.
    Every folder above it must be safe too (``check_path``): one another user can write in
    would let them swap the whole path.
    """
    path = os.path.abspath(path)
    check_path(path)  # before making anything on the way
    os.makedirs(os.path.dirname(path), exist_ok=True)
    check_path(path)  # and what makedirs followed or made
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"{path} must be a directory, not a symbolic link or a file; remove it and start again")
    if st.st_uid != os.getuid():
        raise StateDirError(
            f"{path} belongs to uid {st.st_uid}, not to this server's user (uid {os.getuid()}); "
            "another user may have made it. Remove it, or choose another c.SandboxApp.state_dir"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)  # ours: tighten rather than refuse
    return path


def _open_nofollow(path: str, flags: int, mode: int = 0o600) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def _try_lock(folder: str) -> int | None:
    """An fd holding the slot's exclusive lock, or None while a live server holds it."""
    fd = _open_nofollow(os.path.join(folder, "lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_info(folder: str) -> dict[str, Any]:
    try:
        fd = _open_nofollow(os.path.join(folder, "info.json"), os.O_RDONLY)
    except OSError:
        return {}
    with os.fdopen(fd) as f:
        try:
            info = json.loads(f.read(65536))
        except ValueError:
            return {}
    return info if isinstance(info, dict) else {}


@dataclass
class Slot:
    """A server's slot as another process sees it (for `prune` and tests)."""

    server_id: str
    alive: bool
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServerIdentity:
    server_id: str
    folder: str
    fingerprint: dict[str, str]
    previous: dict[str, Any]  # info of the earlier life this slot was taken over from ({} if new)
    _lock_fd: int | None = None

    @classmethod
    def claim(cls, state_dir: str, fingerprint: dict[str, str]) -> ServerIdentity:
        """Take this server's slot: its own free one if it has one, else a new one."""
        servers = private_dir(os.path.join(private_dir(state_dir), "servers"))
        fingerprint = {"host": socket.gethostname(), **fingerprint}
        mine: list[tuple[float, str, int, dict[str, Any]]] = []
        for name in os.listdir(servers):
            folder = os.path.join(servers, name)
            if not _SLOT.match(name) or not stat.S_ISDIR(os.lstat(folder).st_mode):
                continue
            fd = _try_lock(folder)
            if fd is None:
                continue  # a live server's
            info = _read_info(folder)
            if info.get("fingerprint") == fingerprint:
                mine.append((float(info.get("started", 0)), name, fd, info))
            else:
                os.close(fd)
        mine.sort(reverse=True)
        for _, _, fd, _ in mine[1:]:
            os.close(fd)
        if mine:
            _, server_id, fd, previous = mine[0]
        else:
            server_id = secrets.token_hex(8)
            private_dir(os.path.join(servers, server_id))
            fd, previous = _try_lock(os.path.join(servers, server_id)), {}
            assert fd is not None  # a new random slot cannot be held by anyone
        identity = cls(server_id, os.path.join(servers, server_id), fingerprint, previous, fd)
        identity._write_info()
        return identity

    def _write_info(self) -> None:
        info = {
            "server_id": self.server_id,
            "pid": os.getpid(),
            "started": time.time(),
            "fingerprint": self.fingerprint,
        }
        tmp = os.path.join(self.folder, "info.json.tmp")
        fd = _open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, os.path.join(self.folder, "info.json"))

    def release(self, forget: bool = False) -> None:
        """Drop the lock; ``forget`` also removes the slot (nothing of this server is left)."""
        if forget:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def list_slots(state_dir: str) -> list[Slot]:
    """Every slot in ``state_dir`` and whether its server is alive (its lock is held)."""
    servers = os.path.join(state_dir, "servers")
    if not os.path.isdir(servers):
        return []
    slots = []
    for name in sorted(os.listdir(servers)):
        folder = os.path.join(servers, name)
        if not _SLOT.match(name):
            continue
        fd = _try_lock(folder)
        if fd is not None:
            os.close(fd)
        slots.append(Slot(name, alive=fd is None, info=_read_info(folder)))
    return slots
