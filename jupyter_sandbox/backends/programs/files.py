"""Runs INSIDE a sandbox: the server's file commands (argv: uid gid command path).

Started from a root exec as ``python -I -c <this source> uid gid COMMAND <absolute path> [ARG]``
(``write`` may add a byte count: it then reads that many bytes, not to the end of stdin).
Before anything else it becomes the sandbox's user, as as_user.py does (no supplementary
groups, then the gid and uid, with which every capability goes), and it stops if any capability is
left (under gVisor an exec's first process would keep the container's); on Kubernetes the exec is
that user already (a "restricted" pod cannot change users) and stays as it is. It does the rest itself
(a second Python start costs ~100 ms; ``read`` hands the bytes to cat). It answers with its exit code, the server's own
protocol (no wording is parsed): 72 missing, 73 not a directory, 74 is a directory, 75 not a regular
file, 76 no room (a write that does not fit leaves nothing behind); another failure says why on
stderr and exits 1.

- ``list``: the directory's entries, sorted by name, as one line of JSON on stdout.
- ``read``: a regular file's bytes on stdout (a FIFO or device would block or never end).
- ``write``: stdin into the file, its folders made as needed.
- ``remove``: the file, link or folder (with all it holds).
- ``stat``: the entry's details (``info``) as JSON; a link is described, not followed.
- ``tree DEPTH``: the entries below a directory down to DEPTH levels (1: its own), as JSON.
- ``mkdir``: the directory and its parents (77 if it exists), then its details.
- ``move DEST``: renames the entry to DEST (DEST's folders made), then DEST's details.
- ``pack``: the directory's content as a tar archive on stdout (a pause or snapshot keeps it).
- ``unpack``: a tar archive on stdin extracted into the directory (a resume, a snapshot's new sandbox).
- ``watch RECURSIVE``: polls the directory (no inotify needed) and prints a JSON line
  ``{"changes": [[name, kind], ...], "asked": false}`` for each look that found changes; a line on
  its stdin asks for a look now, answered with ``"asked": true`` (found or not); the first line
  (``asked``, no changes) says it is watching. It ends when its stdin closes (the server hung up).

Standard library only, Python 3.8+.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import select
import shutil
import stat
import sys
from collections.abc import Callable

MISSING, NOT_A_DIRECTORY, IS_A_DIRECTORY, NOT_A_FILE, NO_ROOM, EXISTS = 72, 73, 74, 75, 76, 77
WATCH_INTERVAL = 0.25  # seconds between two looks at a watched directory
WATCH_LIMIT = 50000  # entries a watch looks at (a bigger tree is watched in part)
CHUNK = 1 << 20  # bytes a write moves at once (each syscall costs dearly under gVisor)


def become_user(uid: int, gid: int) -> bool:
    """This process as uid:gid with no supplementary group; False if it kept a capability. A process
    that is that user already (a Kubernetes pod's exec: no capability to change) stays as it is."""
    if os.getresuid() != (uid, uid, uid) or uid == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    with open("/proc/self/status") as status:
        held = [line for line in status if line.startswith(("CapPrm:", "CapEff:")) and int(line.split()[1], 16)]
    return os.getresuid() == (uid, uid, uid) and not held


def entries(path: str, shown_as: str = "") -> list[dict[str, object]]:
    """A directory's entries, sorted by name, as the API lists them (each ``path`` under
    ``shown_as``, by default ``path`` itself). The local backend lists with it too."""
    out: list[dict[str, object]] = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
        out.append(
            {
                "name": entry.name,
                "path": os.path.join(shown_as or path, entry.name),
                "type": kind,
                "size": st.st_size,
                "modified": st.st_mtime,
            }
        )
    return out


def list_entries(path: str) -> int:
    if not os.path.exists(path):
        return MISSING
    if not os.path.isdir(path):
        return NOT_A_DIRECTORY
    print(json.dumps(entries(path)))
    return 0


def read(path: str) -> int:
    if not os.path.exists(path):
        return MISSING
    if os.path.isdir(path):
        return IS_A_DIRECTORY
    if not os.path.isfile(path):
        return NOT_A_FILE
    # cat moves the bytes (as before this program): a read loop here took 5.5-5.8 s for 128 MB under
    # gVisor on a loaded host, where cat stayed within test_starvation's 5 s
    os.execvp("cat", ["cat", "--", path])


def write(path: str, size: str = "-1") -> int:
    """stdin into ``path``: to its end, or (``size`` >= 0) that many bytes (an exec stream that cannot
    say where stdin ends: Kubernetes' v4 channel protocol)."""
    if os.path.isdir(path):
        return IS_A_DIRECTORY
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return NO_ROOM
    source = sys.stdin.buffer
    left = int(size) if int(size) >= 0 else float("inf")  # argv gives a str
    try:
        with open(path, "wb") as f:
            chunk = source.read(int(min(CHUNK, left)))
            while chunk:
                f.write(chunk)
                left -= len(chunk)
                chunk = source.read(int(min(CHUNK, left))) if left > 0 else b""
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return NO_ROOM
    return 0


def remove(path: str) -> int:
    if not os.path.lexists(path):
        return MISSING
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return 0


def _name_of(ids: int, lookup: str) -> str:
    try:
        return pwd.getpwuid(ids).pw_name if lookup == "user" else grp.getgrgid(ids).gr_name
    except KeyError:
        return str(ids)  # a uid no account has (a sandbox's own uid) is shown as its number


def info(path: str, shown_as: str = "") -> dict[str, object]:
    """One entry's details, a link described and not followed (``path`` shown as ``shown_as``)."""
    st = os.lstat(path)
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
    shown = shown_as or path
    out: dict[str, object] = {
        "name": os.path.basename(shown.rstrip("/")) or "/",
        "path": shown,
        "type": kind,
        "size": st.st_size,
        "modified": st.st_mtime,
        "mode": stat.S_IMODE(st.st_mode),
        "permissions": stat.filemode(st.st_mode),
        "owner": _name_of(st.st_uid, "user"),
        "group": _name_of(st.st_gid, "group"),
    }
    if kind == "symlink":
        out["symlink_target"] = os.readlink(path)
    return out


def tree(path: str, depth: int, shown_as: str = "") -> list[dict[str, object]]:
    """The entries below ``path`` down to ``depth`` levels, each directory before what it holds;
    links are listed, never entered."""
    out: list[dict[str, object]] = []
    shown = shown_as or path
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        out.append(info(entry.path, os.path.join(shown, entry.name)))
        if depth > 1 and entry.is_dir(follow_symlinks=False):
            try:
                out += tree(entry.path, depth - 1, os.path.join(shown, entry.name))
            except PermissionError:
                pass  # a folder the user may not read is listed, not entered
    return out


def snapshot(path: str, recursive: bool) -> dict[str, tuple[int, int, int, int]]:
    """What a watch compares: each entry's (inode, mtime_ns, size, mode) by its name below ``path``."""
    seen: dict[str, tuple[int, int, int, int]] = {}
    folders = [""]
    while folders and len(seen) < WATCH_LIMIT:
        folder = folders.pop()
        try:
            found = list(os.scandir(os.path.join(path, folder)))
        except OSError:
            continue  # gone, or not readable, between two looks
        for entry in found:
            name = os.path.join(folder, entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            seen[name] = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
            if recursive and stat.S_ISDIR(st.st_mode):
                folders.append(name)
    return seen


def changes(
    before: dict[str, tuple[int, int, int, int]], after: dict[str, tuple[int, int, int, int]]
) -> list[list[str]]:
    """The events between two snapshots: create, write, remove, rename (the old name; the new one is
    a create), chmod."""
    out: list[list[str]] = []
    added = {name: after[name] for name in after if name not in before}
    new_inodes = {value[0] for value in added.values()}
    for name in sorted(set(before) - set(after)):
        out.append([name, "rename" if before[name][0] in new_inodes else "remove"])
    for name in sorted(added):
        out.append([name, "create"])
        if stat.S_ISREG(added[name][3]) and added[name][2]:
            out.append([name, "write"])  # as inotify tells a new file's first bytes
    for name in sorted(set(before) & set(after)):
        old, new = before[name], after[name]
        if old[0] != new[0] or (old[1:3] != new[1:3] and not stat.S_ISDIR(new[3])):
            out.append([name, "write"])  # (a folder's own time changes with what it holds: not told)
        elif old[3] != new[3]:
            out.append([name, "chmod"])
    return out


def stat_entry(path: str) -> int:
    if not os.path.lexists(path):
        return MISSING
    print(json.dumps(info(path)))
    return 0


def list_tree(path: str, depth: str) -> int:
    if not os.path.exists(path):
        return MISSING
    if not os.path.isdir(path):
        return NOT_A_DIRECTORY
    print(json.dumps(tree(path, max(1, int(depth)))))
    return 0


def make_dir(path: str) -> int:
    if os.path.lexists(path):
        return EXISTS
    try:
        os.makedirs(path)
    except FileExistsError:
        return NOT_A_DIRECTORY  # a file where a parent folder should be
    except NotADirectoryError:
        return NOT_A_DIRECTORY
    print(json.dumps(info(path)))
    return 0


def move(path: str, destination: str) -> int:
    if not os.path.lexists(path):
        return MISSING
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    os.rename(path, destination)
    print(json.dumps(info(destination)))
    return 0


def watch(path: str, recursive: str) -> int:
    if not os.path.exists(path):
        return MISSING
    if not os.path.isdir(path):
        return NOT_A_DIRECTORY
    deep = recursive == "1"
    before = snapshot(path, deep)
    print(json.dumps({"changes": [], "asked": True}), flush=True)  # watching from here on
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], WATCH_INTERVAL)
        asked = bool(ready)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            return 0  # the server hung up
        if not os.path.isdir(path):
            print(json.dumps({"changes": [["", "remove"]], "asked": asked}), flush=True)
            return 0
        after = snapshot(path, deep)
        found = changes(before, after)
        if found or asked:
            print(json.dumps({"changes": found, "asked": asked}), flush=True)
        before = after


def pack(path: str) -> int:
    if not os.path.isdir(path):
        return NOT_A_DIRECTORY
    # tar moves the bytes (as cat does for read); 1 is its "a file changed as it was read". IPython's
    # history stays behind: a kernel running where it is unpacked holds its own open (sqlite then
    # refuses to write a database replaced under it). A persistent volume mounted inside is the volume's,
    # kept by itself: neither its files (--one-file-system) nor its mount point (whose times an unpack
    # would set, and a read-only mount refuses) go into a pause's or a snapshot's archive
    history = "--exclude=./.ipython/profile_default/history.sqlite*"
    mounts = [f"--exclude=./{inside}" for inside in mounts_inside(path)]
    tar = ["tar", "--create", "--file=-", "--sparse", "--one-file-system", history, "--no-wildcards", *mounts]
    os.execvp("tar", [*tar, f"--directory={path}", "."])


def mounts_inside(path: str) -> list[str]:
    """The mount points below ``path``, relative to it (none where /proc/self/mounts cannot be read)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            points = [line.split()[1] for line in f if len(line.split()) > 1]
    except OSError:
        return []
    found: list[str] = []
    for point in points:  # the kernel writes a space, tab, newline or backslash in a path as \ooo
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
        inside = os.path.relpath(point, path)
        if inside not in (".", "..", *found) and not inside.startswith("../"):
            found.append(inside)
    return found


def unpack(path: str) -> int:
    if not os.path.isdir(path):
        return NOT_A_DIRECTORY
    # as the sandbox's user: ownership is this user's; GNU tar refuses members with ".." in them
    os.execvp("tar", ["tar", "--extract", "--file=-", "--no-same-owner", f"--directory={path}"])


COMMANDS: dict[str, Callable[..., int]] = {
    "pack": pack,
    "unpack": unpack,
    "list": list_entries,
    "read": read,
    "write": write,
    "remove": remove,
    "stat": stat_entry,
    "tree": list_tree,
    "mkdir": make_dir,
    "move": move,
    "watch": watch,
}


def main(argv: list[str]) -> int:
    uid, gid, command, *args = argv
    if not become_user(int(uid), int(gid)):
        print("files: still privileged after taking the sandbox's user; nothing done", file=sys.stderr)
        return 1
    path = args[0]
    try:
        return COMMANDS[command](*args)
    except BrokenPipeError:
        return 0  # the server hung up on a watch
    except OSError as e:
        print(f"{path}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # run as `python -I -c`; the local backend imports entries()
    sys.exit(main(sys.argv[1:]))
