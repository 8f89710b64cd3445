"""One-shot archives: made by the client, checked by the server; one entrypoint rule for both.

An archive is an uncompressed tar of the files to run. ``check_archive`` refuses anything that
could write outside the working directory when extracted; ``detect_entrypoint`` is the one
rule for which file runs when the request names none.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
import time
from pathlib import Path

from ..errors import InvalidInput, TooLarge

ENTRYPOINT_CANDIDATES = ("main.py", "__main__.py")


def make_archive(files: dict[str, str | bytes] | Path | str) -> bytes:
    """An uncompressed tar of a ``{name: content}`` dict, of one file, or of a directory's files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if isinstance(files, dict):
            for name, content in files.items():
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        else:
            path = Path(files)
            if path.is_dir():
                for child in sorted(path.rglob("*")):
                    if child.is_file():
                        tar.add(child, arcname=str(child.relative_to(path)))
            else:
                tar.add(path, arcname=path.name)
    return buffer.getvalue()


def archive_names(data: bytes) -> list[str]:
    """The regular files of an archive, in order (no safety checks: see ``check_archive``)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [posixpath.normpath(m.name) for m in tar.getmembers() if m.isfile()]


def read_member(data: bytes, name: str, limit: int) -> tuple[bytes, int]:
    """The first ``limit`` bytes of the archive's file ``name`` and its whole size (b"", 0 when it
    cannot be read: the archive was checked when it came, so only for the odd link)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        try:
            member = tar.getmember(name)
            file = tar.extractfile(member)
        except (KeyError, tarfile.TarError):
            return b"", 0
        if file is None:
            return b"", 0
        with file:
            return file.read(limit), member.size


def detect_entrypoint(names: list[str]) -> str:
    """The file to run when none is named: main.py, else __main__.py, else the only .py file."""
    for candidate in ENTRYPOINT_CANDIDATES:
        if candidate in names:
            return candidate
    scripts = [n for n in names if n.endswith(".py")]
    if len(scripts) == 1:
        return scripts[0]
    if not scripts:
        raise InvalidInput("no entrypoint given and there is no .py file to run", field="entrypoint")
    raise InvalidInput(
        f"no entrypoint given and there are several .py files ({', '.join(sorted(scripts)[:10])}); name the one to run",
        field="entrypoint",
    )


def _member_error(name: str, why: str) -> InvalidInput:
    return InvalidInput(f"archive member {name!r} refused: {why}", field="tar")


def check_archive(data: bytes, max_size: int, max_members: int) -> list[str]:
    """The regular files of an uncompressed tar, after refusing anything unsafe.

    Refused (400 naming the member): absolute paths, ``..``, links whose target leaves the
    archive's root (following the archive's own symlinks), devices, fifos. Over
    ``max_size`` bytes (archive or contents) or ``max_members`` members: 413.
    """
    if len(data) > max_size:
        raise TooLarge(f"archive is {len(data)} bytes; the limit is {max_size}")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            members = tf.getmembers()
    except (tarfile.TarError, EOFError) as e:
        raise InvalidInput(f"the tar part is not an uncompressed tar archive: {e}", field="tar") from e
    if len(members) > max_members:
        raise TooLarge(f"archive has {len(members)} members; the limit is {max_members}")
    if sum(m.size for m in members) > max_size:
        raise TooLarge(f"archive contents exceed {max_size} bytes")
    links: dict[str, str] = {}  # normalized symlink path -> its target (relative to its dir)
    names: dict[str, tarfile.TarInfo] = {}

    def resolve(path: str, who: str, depth: int = 0) -> str:
        """``path`` (normalized, relative) with the archive's symlinks followed; refuses escapes."""
        if depth > 32:
            raise _member_error(who, "too many levels of symbolic links")
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise _member_error(who, "it points outside the archive")
                parts.pop()
                continue
            parts.append(part)
            current = "/".join(parts)
            if current in links:
                target = links[current]
                if target.startswith("/"):
                    raise _member_error(who, "it points outside the archive")
                resolved = resolve(posixpath.join(posixpath.dirname(current), target), who, depth + 1)
                parts = resolved.split("/") if resolved else []
        return "/".join(parts)

    for m in members:
        name = m.name
        if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
            raise _member_error(name, "absolute path")
        if ".." in name.replace("\\", "/").split("/"):
            raise _member_error(name, "'..' in its path")
        if "\x00" in name:
            raise _member_error(name, "NUL in its path")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            kind = "device" if (m.ischr() or m.isblk()) else "fifo" if m.isfifo() else "special file"
            raise _member_error(name, f"{kind}s are not allowed")
        norm = posixpath.normpath(name)
        if norm == ".":
            continue
        parent = posixpath.dirname(norm)
        if resolve(parent, name) != parent:
            raise _member_error(name, "its path goes through a symbolic link")
        if m.issym():
            if m.linkname.startswith("/"):
                raise _member_error(name, f"symbolic link to an absolute path ({m.linkname})")
            links[norm] = m.linkname
            resolve(norm, name)
        elif m.islnk():
            target = posixpath.normpath(m.linkname)
            if m.linkname.startswith("/") or target.startswith("..") or target not in names:
                raise _member_error(name, f"hard link to {m.linkname!r}, which is not a file in the archive")
        names[norm] = m
    return [n for n, m in names.items() if m.isfile() or m.islnk()]
