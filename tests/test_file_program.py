"""programs/files.py, the file commands a Docker sandbox runs as its user: exit codes and output.

Run here with the host's Python (the program is stdlib-only), as root like in a sandbox's root exec,
taking the uid 1000 first; the Docker backend's tests run it in sandboxes. Its exit codes are the
protocol docker_files.py maps to errors (404, 400, 413).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_sandbox.backends import programs
from jupyter_sandbox.backends.base import kernel_argv
from jupyter_sandbox.backends.docker_files import IS_A_DIRECTORY, MISSING, NO_ROOM, NOT_A_DIRECTORY, NOT_A_FILE

USER = 1000  # uid and gid the program takes, as in a sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the program takes another uid first: needs root")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder of the program's user (pytest's own are root's, 0700: uid 1000 could not reach them)."""
    folder = Path(tempfile.mkdtemp(prefix="jsbx-files-"))
    os.chown(folder, USER, USER)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def files(command: str, path: str, stdin: bytes = b"", *more: str) -> subprocess.CompletedProcess[bytes]:
    """programs/files.py as the backend runs it; what the test made is handed to its user first."""
    root = Path(path)
    while not root.name.startswith("jsbx-files-"):
        root = root.parent
    for folder, dirs, names in os.walk(root):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + names)]:
            os.lchown(name, USER, USER)
    return subprocess.run(
        [sys.executable, "-I", "-c", programs.source("files"), str(USER), str(USER), command, path, *more],
        input=stdin,
        capture_output=True,
        timeout=30,
    )


def test_write_makes_folders_and_read_gives_the_bytes_back(tmp_path):
    target = str(tmp_path / "a" / "b" / "data.bin")
    data = bytes(range(256)) * 1000
    assert files("write", target, data).returncode == 0
    read = files("read", target)
    assert read.returncode == 0 and read.stdout == data


def test_list_is_sorted_json_with_kinds(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"12345")
    (tmp_path / "a").mkdir()
    (tmp_path / "c").symlink_to(tmp_path / "b.txt")
    listed = files("list", str(tmp_path))
    assert listed.returncode == 0
    entries = json.loads(listed.stdout)
    assert [(e["name"], e["type"]) for e in entries] == [("a", "dir"), ("b.txt", "file"), ("c", "symlink")]
    assert entries[1]["size"] == 5 and entries[1]["path"] == str(tmp_path / "b.txt")


def test_exit_codes_say_what_went_wrong(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    assert files("list", str(tmp_path / "nope")).returncode == MISSING
    assert files("list", str(tmp_path / "file")).returncode == NOT_A_DIRECTORY
    assert files("read", str(tmp_path / "nope")).returncode == MISSING
    assert files("read", str(tmp_path / "dir")).returncode == IS_A_DIRECTORY
    assert files("read", str(tmp_path / "fifo")).returncode == NOT_A_FILE  # never opened: it would block
    assert files("write", str(tmp_path / "dir"), b"x").returncode == IS_A_DIRECTORY
    assert files("write", str(tmp_path / "file" / "under"), b"x").returncode == NO_ROOM  # its folder cannot be made
    assert files("remove", str(tmp_path / "nope")).returncode == MISSING


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_a_write_that_does_not_fit_is_no_room(tmp_path):
    (tmp_path / "full").symlink_to("/dev/full")
    assert files("write", str(tmp_path / "full"), b"x" * 100_000).returncode == NO_ROOM


def test_remove_takes_files_links_and_folders_but_not_what_a_link_points_to(tmp_path):
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "f").write_text("x")
    (tmp_path / "kept").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "kept")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for name in ("dir", "link", "dangling"):
        assert files("remove", str(tmp_path / name)).returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["kept"]


def test_it_runs_as_the_sandboxs_user(tmp_path):
    """What root made and keeps to itself stays out of reach: the program dropped root first."""
    written = files("write", str(tmp_path / "mine.txt"), b"x")
    assert written.returncode == 0 and (tmp_path / "mine.txt").stat().st_uid == USER
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "secret").write_text("x")
    os.chown(tmp_path / "roots", 0, 0)  # after files() handed everything to the user: now root's again
    (tmp_path / "roots").chmod(0o700)
    (tmp_path / "roots" / "secret").chmod(0o600)
    read = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            programs.source("files"),
            str(USER),
            str(USER),
            "read",
            str(tmp_path / "roots" / "secret"),
        ],
        capture_output=True,
        timeout=30,
    )
    assert read.returncode in (1, MISSING) and read.stdout == b""


def test_kernel_without_debugger_is_its_program():
    argv = kernel_argv("python", "conn.json", debugger=False)
    assert argv[:2] == ["python", "-c"] and argv[3:] == ["-f", "conn.json"]
    assert argv[2] == programs.source("kernel_without_debugger") and 'sys.modules["debugpy"] = None' in argv[2]


def test_write_with_a_byte_count_takes_that_many_bytes_and_no_more(tmp_path):
    """Kubernetes' v4 exec cannot end stdin: the count says where the file ends."""
    target = str(tmp_path / "counted.bin")
    assert files("write", target, b"0123456789 and what follows", "10").returncode == 0
    assert Path(target).read_bytes() == b"0123456789"
    assert files("write", target, b"", "0").returncode == 0 and Path(target).read_bytes() == b""
