"""envd's filesystem service and /files through a real server and the real, unmodified ``e2b`` SDK
(no E2B_DEBUG): on Docker (the real engine), on the local backend and on the kubernetes backend
(the k8s_api fixture's endpoint). The SDK gets only
E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY; the server has two users (tests/servers.py
HeaderUsers), its token is alice's.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from e2b import AsyncSandbox, FilesystemEventType, FileType, Sandbox
from e2b.exceptions import InvalidArgumentException, NotFoundException

from servers import JupyterServer, backend_config

BACKENDS = [
    pytest.param("docker", marks=pytest.mark.docker),
    "local",
    pytest.param("kubernetes", marks=pytest.mark.docker),
]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    if request.param == "docker":
        request.getfixturevalue("docker_ready")
    k8s_api = request.getfixturevalue("k8s_api") if request.param == "kubernetes" else None
    config = backend_config(request.param, k8s_api)
    with JupyterServer(tmp_path_factory.mktemp(f"e2b-files-{request.param}"), users=True, config=config) as server:
        server.backend = request.param
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


def test_uploads_gzip_multipart_and_streamed(sbx):
    """The SDK's three upload encodings: octet-stream gzipped, multipart with several files, and a
    file-like object streamed as octet-stream."""
    big = bytes(range(256)) * 4096  # 1 MiB
    sbx.files.write("up/zipped.bin", big, gzip=True)
    assert bytes(sbx.files.read("up/zipped.bin", format="bytes")) == big
    written = sbx.files.write_files(
        [{"path": "up/one.txt", "data": "1"}, {"path": "/home/user/up/two.txt", "data": "2"}]
    )
    assert sorted(w.path for w in written) == ["/home/user/up/one.txt", "/home/user/up/two.txt"]
    assert sbx.files.read("up/two.txt") == "2"
    sbx.files.write("up/stream.bin", io.BytesIO(b"streamed"))
    assert sbx.files.read("up/stream.bin") == "streamed"
    assert (
        sbx.files.read("up/empty.txt", format="bytes") == bytearray() if sbx.files.write("up/empty.txt", b"") else False
    )


def test_make_dir_list_with_depth_rename_remove(sbx):
    assert sbx.files.make_dir("tree/a/b") is True
    assert sbx.files.make_dir("tree/a/b") is False  # there already: the SDK's ALREADY_EXISTS
    sbx.files.write("tree/a/b/deep.txt", "x")
    sbx.files.write("tree/top.txt", "y")
    assert [e.path for e in sbx.files.list("tree")] == ["/home/user/tree/a", "/home/user/tree/top.txt"]
    deep = {e.path: e.type for e in sbx.files.list("tree", depth=3)}
    assert deep == {
        "/home/user/tree/a": FileType.DIR,
        "/home/user/tree/a/b": FileType.DIR,
        "/home/user/tree/a/b/deep.txt": FileType.FILE,
        "/home/user/tree/top.txt": FileType.FILE,
    }
    moved = sbx.files.rename("tree/top.txt", "/home/user/tree/a/moved.txt")
    assert (moved.name, moved.path) == ("moved.txt", "/home/user/tree/a/moved.txt")
    assert sbx.files.read("tree/a/moved.txt") == "y"
    assert not sbx.files.exists("tree/top.txt")
    with pytest.raises(NotFoundException):
        sbx.files.rename("tree/nothing", "tree/else")
    sbx.files.remove("tree/a")
    assert not sbx.files.exists("tree/a/b/deep.txt")
    assert [e.name for e in sbx.files.list("tree")] == []


def test_paths_outside_the_working_directory_are_refused(sbx):
    with pytest.raises(InvalidArgumentException, match="outside"):
        sbx.files.list("/etc")
    with pytest.raises(InvalidArgumentException, match="outside"):
        sbx.files.get_info("../../etc/passwd")
    with pytest.raises(InvalidArgumentException, match="outside"):
        sbx.files.rename("/home/user", "/tmp/away")


def test_a_link_out_is_described_not_followed(sbx, server):
    """A symlink the sandbox made towards /etc: stat and list describe the link and never enter it.
    On the local backend /etc is the host's: reading, listing or watching through it is refused; in a
    Docker sandbox it is the sandbox's own /etc."""
    sbx.files.write("linkdir/file.txt", "in")
    assert sbx.files.make_dir("linkdir/sub") is True
    events = server.execute(sbx.sandbox_id, "import os; os.symlink('/etc', 'linkdir/out')")
    assert not [e for e in events if e.get("type") == "error"], events
    info = sbx.files.get_info("linkdir/out")
    assert info.type == FileType.SYMLINK and info.symlink_target == "/etc"
    assert {e.name for e in sbx.files.list("linkdir", depth=3)} == {"file.txt", "sub", "out"}
    if server.backend == "local":
        with pytest.raises(InvalidArgumentException, match="outside"):
            sbx.files.read("linkdir/out/passwd")
        with pytest.raises(InvalidArgumentException, match="outside"):
            sbx.files.list("linkdir/out")
        with pytest.raises(InvalidArgumentException, match="outside"):
            sbx.files.watch_dir("linkdir/out")
        with pytest.raises(InvalidArgumentException, match="outside"):
            sbx.files.write("linkdir/out/planted", "x")
    else:
        assert "root:" in sbx.files.read("linkdir/out/passwd")
    sbx.files.remove("linkdir/out")  # the link goes, not what it points at
    assert not sbx.files.exists("linkdir/out")


def test_watch_dir_with_polled_events(sbx):
    sbx.files.make_dir("watched")
    sbx.files.write("watched/old.txt", "1")
    handle = sbx.files.watch_dir("watched")
    try:
        sbx.files.write("watched/old.txt", "changed")
        sbx.files.write("watched/new.txt", "n")
        events = handle.get_new_events()  # everything made before the ask is in it
        seen = {(e.name, e.type) for e in events}
        assert ("old.txt", FilesystemEventType.WRITE) in seen
        assert ("new.txt", FilesystemEventType.CREATE) in seen
        sbx.files.remove("watched/new.txt")
        assert ("new.txt", FilesystemEventType.REMOVE) in {(e.name, e.type) for e in handle.get_new_events()}
    finally:
        handle.stop()
    with pytest.raises(NotFoundException):
        sbx.files.watch_dir("no-such-dir")


WATCHERS = """
import glob
def watching():
    found = 0
    for name in glob.glob('/proc/[0-9]*/cmdline'):
        try:
            found += b'\\0watch\\0/home/user' in open(name, 'rb').read()
        except OSError:
            pass
    return found
watching()
"""


def watch_processes(server, sandbox_id: str) -> int:
    """How many watch programs run in a Docker sandbox (each watch is one)."""
    events = server.execute(sandbox_id, WATCHERS)
    return int(next(e for e in events if e["type"] == "result")["text"])


def test_watch_dir_recursive_stream_async(e2b_env):
    async def main():
        sandbox = await AsyncSandbox.create(timeout=300)
        try:
            await sandbox.files.make_dir("rec/nested")
            seen: list[tuple[str, FilesystemEventType]] = []
            got = asyncio.Event()

            def on_event(event):
                seen.append((event.name, event.type))
                if event.name == "rec2/nested/file.txt" or event.name == "nested/file.txt":
                    got.set()

            handle = await sandbox.files.watch_dir("rec", on_event=on_event, recursive=True)
            if e2b_env.backend == "docker":
                assert watch_processes(e2b_env, sandbox.sandbox_id) == 1
            await sandbox.files.write("rec/nested/file.txt", "deep")
            await asyncio.wait_for(got.wait(), 30)
            await handle.stop()
            assert ("nested/file.txt", FilesystemEventType.CREATE) in seen
            if e2b_env.backend == "docker":  # the stream's end stops the program in the sandbox
                for _ in range(50):
                    if watch_processes(e2b_env, sandbox.sandbox_id) == 0:
                        break
                    await asyncio.sleep(0.2)
                assert watch_processes(e2b_env, sandbox.sandbox_id) == 0
        finally:
            await sandbox.kill()

    asyncio.run(main())


def test_signed_upload_and_download_urls(sbx):
    import httpx

    up = sbx.upload_url("urls/up.bin")
    assert "signature=v1_" in up
    r = httpx.post(up, files={"file": ("urls/up.bin", b"\x00\x01payload")})
    assert r.status_code == 200, r.text
    assert r.json() == [{"name": "up.bin", "type": "file", "path": "/home/user/urls/up.bin"}]
    down = sbx.download_url("urls/up.bin", use_signature_expiration=60)
    r = httpx.get(down)
    assert r.status_code == 200 and r.content == b"\x00\x01payload"
    # a URL for another path, or an altered signature, opens nothing
    assert httpx.get(down.replace("up.bin", "other.bin")).status_code == 404
    assert httpx.get(down.replace("signature=v1_", "signature=v1_x")).status_code == 404
    expired = sbx.download_url("urls/up.bin", use_signature_expiration=-10)
    assert httpx.get(expired).status_code == 401
    assert httpx.get(sbx.download_url("urls/up.bin").split("&signature")[0]).status_code == 401


def test_another_users_key_opens_nothing(sbx, server):
    """bob's key, and the right sandbox id, on each filesystem route: 404 (as if it did not exist)."""
    import httpx

    bob = server.api("POST", "keys", json={"name": "t"}, user="bob").json()["key"]
    plane = server.url + "sandbox/e2b/plane"
    headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49983", "X-API-KEY": bob}
    assert httpx.get(plane + "/files", params={"path": "x"}, headers=headers).status_code == 404
    assert httpx.post(plane + "/files", params={"path": "x"}, content=b"a", headers=headers).status_code == 404
    for method in ("Stat", "ListDir", "MakeDir", "Move", "Remove", "CreateWatcher"):
        r = httpx.post(
            f"{plane}/filesystem.Filesystem/{method}",
            json={"path": "/home/user"},
            headers={**headers, "Content-Type": "application/json", "Connect-Protocol-Version": "1"},
        )
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, r.text)
    # bob's watcher ids are not alice's: a guessed id of hers is unknown to him
    r = httpx.post(
        f"{plane}/filesystem.Filesystem/WatchDir",
        content=b"\x00\x00\x00\x00\x02{}",
        headers={**headers, "Content-Type": "application/connect+json"},
    )
    assert r.status_code == 404
    # no credentials at all: 401, before the body is taken (an upload is refused, not stored)
    del headers["X-API-KEY"]
    assert httpx.get(plane + "/files", params={"path": "x"}, headers=headers).status_code == 401
    r = httpx.post(plane + "/files", params={"path": "planted"}, content=b"x" * (4 << 20), headers=headers)
    assert r.status_code == 401
    assert not sbx.files.exists("planted")


def test_connect_errors_and_binary_protobuf(sbx, server):
    """The Connect wire as other clients speak it: binary protobuf, a bad body, an unknown method."""
    import httpx

    plane = server.url + "sandbox/e2b/plane/filesystem.Filesystem/"
    headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49983", "X-API-KEY": server.token}
    sbx.files.write("bin.txt", "12345")
    path = b"/home/user/bin.txt"
    r = httpx.post(
        plane + "Stat",
        content=b"\x0a" + bytes([len(path)]) + path,
        headers={**headers, "Content-Type": "application/proto"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/proto"
    assert path in r.content and b"bin.txt" in r.content
    r = httpx.post(plane + "Stat", content=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument"
    r = httpx.post(plane + "Nope", json={}, headers=headers)
    assert r.json()["code"] == "unimplemented"
    r = httpx.post(plane + "Stat", content=b"x", headers={**headers, "Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument"
