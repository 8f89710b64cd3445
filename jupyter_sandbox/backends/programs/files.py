"""Runs INSIDE a sandbox: the server's file commands (argv: uid gid command path).

Started from a root exec as ``python -I -c <this source> uid gid list|read|write|remove <absolute
path>`` (``write`` may add a byte count: it then reads that many bytes, not to the end of stdin).
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

Standard library only, Python 3.8+.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys

MISSING, NOT_A_DIRECTORY, IS_A_DIRECTORY, NOT_A_FILE, NO_ROOM = 72, 73, 74, 75, 76
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


def write(path: str, size: int = -1) -> int:
    """stdin into ``path``: to its end, or (``size`` >= 0) that many bytes (an exec stream that cannot
    say where stdin ends: Kubernetes' v4 channel protocol)."""
    if os.path.isdir(path):
        return IS_A_DIRECTORY
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return NO_ROOM
    source = sys.stdin.buffer
    left = size if size >= 0 else float("inf")
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


COMMANDS = {"list": list_entries, "read": read, "write": write, "remove": remove}


def main(argv: list[str]) -> int:
    uid, gid, command, path, *size = argv  # write: an optional byte count
    if not become_user(int(uid), int(gid)):
        print("files: still privileged after taking the sandbox's user; nothing done", file=sys.stderr)
        return 1
    try:
        if command == "write" and size:
            return write(path, int(size[0]))
        return COMMANDS[command](path)
    except OSError as e:
        print(f"{path}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # run as `python -I -c`; the local backend imports entries()
    sys.exit(main(sys.argv[1:]))
