"""``%sandbox pull FILE [DEST]``: a sandbox's file copied into the workspace (the notebook's folder,
which is the notebook kernel's working directory)."""

from __future__ import annotations

import os
import posixpath

from IPython.core.error import UsageError

from .client import Sandbox
from .client.files import FileType
from .models import format_size


class PullRefused(Exception):
    """The file was not copied, and why (in one line)."""


def destination(source: str, dest: str | None) -> str:
    """Where ``source`` lands: DEST, into DEST when it is a folder, else beside the notebook."""
    base = posixpath.basename(source.rstrip("/"))
    if not dest:
        return os.path.abspath(base)
    if os.path.isdir(dest) or dest.endswith(("/", os.sep)):
        return os.path.abspath(os.path.join(dest, base))
    return os.path.abspath(dest)


def pull_file(sandbox: Sandbox, source: str, dest: str | None, *, force: bool, max_size: int) -> tuple[str, int]:
    """Copy one file; (where it went, its size). Refuses to overwrite without ``force``, and files
    over ``max_size``."""
    target = destination(source, dest)
    if os.path.isdir(target):
        raise PullRefused(f"{target} is a folder: give a file name as DEST")
    if os.path.exists(target) and not force:
        raise PullRefused(f"{target} exists: nothing copied (--force overwrites it)")
    info = sandbox.files.get_info(source)
    if info.type == FileType.DIR:
        raise PullRefused(f"{source} is a folder in the sandbox: pull copies one file")
    if info.size > max_size:
        raise PullRefused(
            f"{source} is {info.size:,} bytes, over the {format_size(max_size)} pull limit: nothing copied "
            "(`%config SandboxMagics.pull_max_size = ...` in bytes raises it)"
        )
    data = sandbox.files.read(source, format="bytes")
    if len(data) > max_size:  # it grew between the look and the read
        raise PullRefused(f"{source} grew over the {format_size(max_size)} pull limit while copied: nothing copied")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as f:
        f.write(data)
    return target, len(data)


def pull_words(sandbox: Sandbox, words: list[str], *, force: bool, max_size: int) -> str:
    """``%sandbox pull FILE [DEST]`` as its words came: the file copied, and the line that says so."""
    if len(words) > 2:
        raise UsageError(
            "%sandbox pull FILE [DEST]: one file at a time (a word that is a Python name is a variable: "
            "write ./NAME for a file)"
        )
    target, size = pull_file(sandbox, words[0], words[1] if len(words) > 1 else None, force=force, max_size=max_size)
    return f"copied {words[0]} from {sandbox.name} to {target} ({size:,} bytes)"
