"""Files of this host that are copied into a sandbox: ``exec --file/--dir`` and the notebook's folder.

They are read here and written into the sandbox as bytes, so nothing of the host is mounted. A
symlink is never followed (its target may be anything the server's user can read): one named
outright is refused, one inside a folder is skipped and reported. The total is capped, and the
error says the cap and how far over it the files are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import InvalidInput, NotFound, TooLarge
from .models import format_size

if TYPE_CHECKING:
    from .client import Sandbox

# what the notebook's folder may hold in all, copied by %%sandbox --with-files
NOTEBOOK_FILES_CAP = 100 * 1024**2
# most files copied at once: a folder of many small files (a home folder, node_modules) is
# refused soon rather than walked to its end
MAX_FILES = 10_000


@dataclass
class HostFiles:
    """What to write into the sandbox: (path relative to its working directory, bytes)."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # host paths of symlinks not followed
    size: int = 0
    names: set[str] = field(default_factory=set)  # the paths in the sandbox, each once

    def add(self, host_path: str, where: str, cap: int) -> None:
        if where in self.names:
            raise InvalidInput(f"two files would both be {where} in the sandbox (the second is {host_path})")
        if len(self.files) >= MAX_FILES:
            raise TooLarge(f"the files to copy are more than {MAX_FILES} (at {host_path}); send fewer")
        size = os.lstat(host_path).st_size
        if self.size + size > cap:
            raise TooLarge(
                f"the files to copy are over the cap of {format_size(cap)} (at {host_path}: "
                f"{self.size + size} bytes so far); send fewer, or raise the cap"
            )
        with open(host_path, "rb") as f:
            self.files.append((where, f.read()))
        self.names.add(where)
        self.size += size


def _add_folder(found: HostFiles, folder: str, prefix: str, cap: int) -> None:
    for top, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for entry in [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            found.skipped.append(os.path.join(top, entry))
            dirs.remove(entry)  # os.walk would list it, not enter it: said once, here
        for entry in sorted(names):
            path = os.path.join(top, entry)
            if os.path.islink(path):
                found.skipped.append(path)
            elif os.path.isfile(path):  # not sockets, fifos, devices
                found.add(path, os.path.join(prefix, os.path.relpath(path, folder)), cap)


def gather_inputs(files: list[str], dirs: list[str], cap: int) -> HostFiles:
    """``exec``'s inputs: each file by its own name, each folder by its name with what is in it."""
    found = HostFiles()
    for path in files:
        if os.path.islink(path):
            raise InvalidInput(f"--file {path} is a symlink; symlinks are not followed (name its target)")
        if not os.path.isfile(path):
            raise NotFound(f"--file {path}: no such file")
        found.add(path, os.path.basename(path), cap)
    for path in dirs:
        if os.path.islink(path):
            raise InvalidInput(f"--dir {path} is a symlink; symlinks are not followed (name its target)")
        if not os.path.isdir(path):
            raise NotFound(f"--dir {path}: no such folder")
        _add_folder(found, path, os.path.basename(os.path.normpath(path)), cap)
    return found


def gather_folder(folder: str, cap: int) -> HostFiles:
    """A folder's contents, for the sandbox's working directory (the notebook's folder)."""
    found = HostFiles()
    _add_folder(found, folder, "", cap)
    return found


def copy_folder(sandbox: Sandbox, folder: str, cap: int = NOTEBOOK_FILES_CAP) -> HostFiles:
    """Copy ``folder``'s contents into the sandbox's working directory (none when over ``cap``)."""
    found = gather_folder(folder, cap)
    for path, data in found.files:
        sandbox.files.write(path, data)
    return found
