"""Persistent volumes on the host (issue 23): one size-limited filesystem per volume.

A volume is an image file preallocated to its size (``fallocate``: every block is the file's
before anything is written, so writes inside never take more of the host's disk), formatted
ext4 with no blocks reserved for root (so the sandbox's user gets ENOSPC at the limit, not
before), attached to a loop device and mounted (nosuid, nodev) on the host under the volume's
own folder. Containers get that mount point, the root of a filesystem of its own: no directory
of the host's or of a user's is ever shared with a sandbox.

Layout under ``root`` (made 0700): ``<volume id>/meta.json`` (owner, name, size, created: written
by the server only), ``<volume id>/image.ext4`` and ``<volume id>/mnt``. The mount outlives the
server (a crash, kill -9): a restarted server finds it mounted and uses it; after a reboot it
mounts the image again, on the loop device still attached to it when there is one (one image is
never attached twice: two ext4 mounts of one image would corrupt it).

Every method blocks (it runs mkfs, losetup, mount): callers run them in a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import BackendUnavailable, Conflict, NotFound, QuotaExceeded

IMAGE = "image.ext4"
META = "meta.json"
MOUNT = "mnt"
MIN_SIZE = 16 * 1024**2  # ext4's journal and metadata need room: smaller is refused


def volume_id(owner: str, name: str) -> str:
    """The volume's id: stable for (owner, name), the same after a restart, and no path of the owner's."""
    return "vol_" + hashlib.sha256(f"{owner}\0{name}".encode()).hexdigest()[:24]


def volumes_problem() -> str | None:
    """Why volumes cannot work on this host (None when they can): root, loop devices and e2fsprogs."""
    if os.geteuid() != 0:
        return "persistent volumes need the server to run as root (to attach loop devices)"
    if not os.path.exists("/dev/loop-control"):
        return "persistent volumes need loop devices, and this host has no /dev/loop-control"
    missing = [tool for tool in ("fallocate", "mkfs.ext4", "losetup", "mount", "umount") if not shutil.which(tool)]
    if missing:
        return f"persistent volumes need {', '.join(missing)} on the host (util-linux, e2fsprogs)"
    return None


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BackendUnavailable(f"{argv[0]} failed for a volume: {done.stderr.strip()[:300]}")
    return done.stdout


@dataclass
class VolumeUsage:
    used: int
    capacity: int


class VolumeImages:
    """The volumes' image files and mounts under ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()  # one mkfs, mount or removal at a time
        self.attached_here: set[str] = set()  # volume ids this process used (detached at close)

    def folder(self, vid: str) -> str:
        if not vid.startswith("vol_") or not vid[4:].isalnum():
            raise NotFound(f"no volume {vid}")
        return os.path.join(self.root, vid)

    def mount_point(self, vid: str) -> str:
        return os.path.join(self.folder(vid), MOUNT)

    def meta(self, vid: str) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self.folder(vid), META), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def all_meta(self) -> list[dict[str, Any]]:
        """Every volume's meta (id included), in order of creation."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        found = [m for m in (self.meta(n) for n in names if n.startswith("vol_")) if m is not None]
        return sorted(found, key=lambda m: m.get("created", 0))

    def create(self, owner: str, name: str, size: int, uid: int, gid: int) -> dict[str, Any]:
        """A new volume's image, formatted, its root owned by ``uid:gid``; returns its meta."""
        vid = volume_id(owner, name)
        with self._lock:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700)
            free = shutil.disk_usage(self.root).free
            if size > free:
                raise QuotaExceeded(f"the server's disk has {free // 1024**2} MiB free, less than the volume's size")
            folder = self.folder(vid)
            os.makedirs(folder, mode=0o700, exist_ok=True)
            image = os.path.join(folder, IMAGE)
            if os.path.exists(image) or os.path.ismount(os.path.join(folder, MOUNT)):
                raise Conflict(f"volume {name!r} is left from before without its record: remove {folder} first")
            try:
                _run("fallocate", "-l", str(size), image)
                _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", f"root_owner={uid}:{gid},nodiscard", image)
            except BaseException:
                for remove_leftover, leftover in ((os.unlink, image), (os.rmdir, folder)):  # never recursive
                    try:
                        remove_leftover(leftover)
                    except OSError:
                        pass
                raise
            meta = {"id": vid, "owner": owner, "name": name, "size": size, "created": time.time()}
            tmp = os.path.join(folder, META + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(meta, f)
            os.replace(tmp, os.path.join(folder, META))
        return meta

    def _loop_devices(self, image: str) -> list[str]:
        """The loop devices attached to ``image`` (``losetup -j``)."""
        return [line.split(":", 1)[0] for line in _run("losetup", "-j", image).splitlines() if line.strip()]

    def attach(self, vid: str, uid: int, gid: int) -> str:
        """The volume mounted on the host (mounted now unless it is already); its mount point."""
        folder, point = self.folder(vid), self.mount_point(vid)
        image = os.path.join(folder, IMAGE)
        if not os.path.exists(image):
            raise NotFound(f"no volume {vid}")
        with self._lock:
            if not os.path.ismount(point):
                os.makedirs(point, mode=0o700, exist_ok=True)
                devices = self._loop_devices(image) or [_run("losetup", "--find", "--show", image).strip()]
                _run("mount", "-t", "ext4", "-o", "nosuid,nodev", devices[0], point)
            self.attached_here.add(vid)  # mounted now or by an earlier run (then killed): detached at close
            # the sandbox's user owns the root (its uid may follow the backend's settings)
            if os.stat(point).st_uid != uid:
                os.chown(point, uid, gid)
            os.chmod(point, 0o755)
        return point

    def usage(self, vid: str) -> VolumeUsage | None:
        """Bytes used and the filesystem's capacity; None while it is not mounted."""
        point = self.mount_point(vid)
        if not os.path.ismount(point):
            return None
        stat = os.statvfs(point)
        return VolumeUsage(used=(stat.f_blocks - stat.f_bfree) * stat.f_frsize, capacity=stat.f_blocks * stat.f_frsize)

    def detach(self, vid: str) -> None:
        """Unmount the volume and detach its loop device (the image stays). A container that still
        has it mounted keeps it: the loop device then goes when that container does."""
        folder, point = self.folder(vid), self.mount_point(vid)
        with self._lock:
            if os.path.ismount(point):
                _run("umount", point)
            image = os.path.join(folder, IMAGE)
            if os.path.exists(image):
                for device in self._loop_devices(image):
                    _run("losetup", "-d", device)
            self.attached_here.discard(vid)

    def remove(self, vid: str) -> None:
        """Detach the volume and delete it, its files with it."""
        self.detach(vid)
        folder = self.folder(vid)
        with self._lock:
            for name in (IMAGE, META):
                try:
                    os.unlink(os.path.join(folder, name))
                except FileNotFoundError:
                    pass
            for leftover in (os.path.join(folder, MOUNT), folder):
                try:
                    os.rmdir(leftover)  # never a recursive removal: a mount point may hold a sandbox's files
                except OSError:
                    pass

    def detach_all(self, only_here: bool = True) -> None:
        """Detach the volumes this process used (``only_here``), or every volume under ``root``."""
        ids = list(self.attached_here) if only_here else [m["id"] for m in self.all_meta()]
        for vid in ids:
            self.detach(vid)
