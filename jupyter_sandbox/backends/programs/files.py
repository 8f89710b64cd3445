"""Runs INSIDE a sandbox, as its user: the file commands of the server (argv: command path).

Started as ``python -I -c <this source> list|read|write|remove <absolute path>`` (through
as_user.py: never as root). It answers with its exit code, the server's own protocol (no
wording is parsed): 72 missing, 73 not a directory, 74 is a directory, 75 not a regular file,
76 no room (a write that does not fit leaves nothing behind); another failure says why on
stderr and exits 1.

- ``list``: the directory's entries, sorted by name, as one line of JSON on stdout.
- ``read``: a regular file's bytes on stdout (a FIFO or device would block or never end).
- ``write``: stdin into the file, its folders made as needed.
- ``remove``: the file, link or folder (with all it holds).

Standard library only, Python 3.8+.
"""

import json
import os
import shutil
import stat
import sys

MISSING, NOT_A_DIRECTORY, IS_A_DIRECTORY, NOT_A_FILE, NO_ROOM = 72, 73, 74, 75, 76
CHUNK = 1 << 16


def list_entries(path):
    if not os.path.exists(path):
        return MISSING
    if not os.path.isdir(path):
        return NOT_A_DIRECTORY
    entries = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
        entries.append(
            {
                "name": entry.name,
                "path": os.path.join(path, entry.name),
                "type": kind,
                "size": st.st_size,
                "modified": st.st_mtime,
            }
        )
    print(json.dumps(entries))
    return 0


def read(path):
    if not os.path.exists(path):
        return MISSING
    if os.path.isdir(path):
        return IS_A_DIRECTORY
    if not os.path.isfile(path):
        return NOT_A_FILE
    out = sys.stdout.buffer
    with open(path, "rb") as f:
        chunk = f.read(CHUNK)
        while chunk:
            out.write(chunk)
            chunk = f.read(CHUNK)
    out.flush()
    return 0


def write(path):
    if os.path.isdir(path):
        return IS_A_DIRECTORY
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return NO_ROOM
    source = sys.stdin.buffer
    try:
        with open(path, "wb") as f:
            chunk = source.read(CHUNK)
            while chunk:
                f.write(chunk)
                chunk = source.read(CHUNK)
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return NO_ROOM
    return 0


def remove(path):
    if not os.path.lexists(path):
        return MISSING
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return 0


COMMANDS = {"list": list_entries, "read": read, "write": write, "remove": remove}


def main(argv):
    command, path = argv
    try:
        return COMMANDS[command](path)
    except OSError as e:
        print(f"{path}: {e.strerror or e}", file=sys.stderr)
        return 1


sys.exit(main(sys.argv[1:]))
