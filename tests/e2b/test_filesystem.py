"""envd's filesystem service and /files through a real server and the real, unmodified ``e2b`` SDK
(no E2B_DEBUG): on Docker (the real engine) and on the local backend. The SDK gets only
E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY; the server has two users (tests/servers.py
HeaderUsers), its token is alice's.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from e2b import AsyncSandbox, FileType, FilesystemEventType, Sandbox
from e2b.exceptions import InvalidArgumentException, NotFoundException

from servers import JupyterServer

BACKENDS = ["docker", "local"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    if request.param == "docker":
        request.getfixturevalue("docker_ready")
    config = {"SandboxApp": {"backend": request.param}}
    with JupyterServer(tmp_path_factory.mktemp(f"e2b-files-{request.param}"), users=True, config=config) as server:
        yield server


@pytest.fixture
def e2b_env(server, monkeypatch):
    """The SDK pointed at ``server``, as `jupyter sandbox e2b-env` would, with alice's key."""
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
    monkeypatch.setenv("E2B_API_KEY", server.token)
    return server


@pytest.fixture
def sbx(e2b_env):
    sandbox = Sandbox.create(timeout=300)
    yield sandbox
    sandbox.kill()


def test_write_read_info_list_exists(sbx):
    info = sbx.files.write("notes/a.txt", "hello")
    assert info.path == "/home/user/notes/a.txt" and info.name == "a.txt"
    assert sbx.files.read("/home/user/notes/a.txt") == "hello"
    assert sbx.files.read("notes/a.txt", format="bytes") == bytearray(b"hello")
    entry = sbx.files.get_info("notes/a.txt")
    assert (entry.name, entry.type, entry.size, entry.path) == ("a.txt", FileType.FILE, 5, "/home/user/notes/a.txt")
    assert entry.permissions == "-rw-r--r--"
    assert sbx.files.exists("notes/a.txt") and not sbx.files.exists("notes/missing.txt")
    names = [e.name for e in sbx.files.list("notes")]
    assert names == ["a.txt"]
    with pytest.raises(NotFoundException):
        sbx.files.read("notes/missing.txt")
    with pytest.raises(NotFoundException):
        sbx.files.get_info("notes/missing.txt")
