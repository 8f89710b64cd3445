"""Connect-RPC over tornado (server/connect_rpc.py) and envd's message tables (server/envd_proto.py):
the codecs both ways, and a tiny service on the wire."""

from __future__ import annotations

import datetime
import json
import struct

import httpx
import pytest
from tornado import httpserver, netutil, web

from jupyter_sandbox.backends.base import SandboxBackend
from jupyter_sandbox.errors import AlreadyExists, BackendUnavailable, NotFound
from jupyter_sandbox.server import envd_proto as pb
from jupyter_sandbox.server.connect_rpc import ConnectHandler, ConnectService, envelope, open_envelope

WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=datetime.timezone.utc)
ENTRY = {
    "name": "a.txt",
    "type": 1,
    "path": "/home/user/a.txt",
    "size": 2**40,
    "mode": 0o644,
    "modified_time": WHEN,
    "symlink_target": "",  # optional: kept although empty
    "metadata": {"k": "v"},
}


def test_json_is_proto3_json():
    data = pb.to_json(pb.STAT_RESPONSE, {"entry": ENTRY})["entry"]
    assert data["type"] == "FILE_TYPE_FILE" and data["size"] == str(2**40)  # enums by name, int64 as text
    assert data["modifiedTime"] == "2026-01-02T03:04:05.250000Z" and data["symlinkTarget"] == ""
    assert "owner" not in data  # defaults left out
    back = pb.from_json(pb.STAT_RESPONSE, {"entry": data})["entry"]
    assert back["size"] == 2**40 and back["type"] == 1 and back["modified_time"] == WHEN
    assert pb.from_json(pb.LIST_DIR_REQUEST, {"path": "/x", "depth": 3, "newField": 1}) == {"path": "/x", "depth": 3}
    with pytest.raises(pb.InvalidInput):
        pb.from_json(pb.LIST_DIR_REQUEST, {"depth": -1})
    with pytest.raises(pb.InvalidInput):
        pb.from_json(pb.STAT_REQUEST, {"path": 5})


def test_binary_round_trip_and_truncation():
    data = pb.to_binary(pb.STAT_RESPONSE, {"entry": ENTRY})
    back = pb.from_binary(pb.STAT_RESPONSE, data)["entry"]
    assert {k: back[k] for k in ("name", "type", "path", "size", "mode", "metadata")} == {
        k: ENTRY[k] for k in ("name", "type", "path", "size", "mode", "metadata")
    }
    assert back["modified_time"] == WHEN
    with pytest.raises(pb.InvalidInput):
        pb.from_binary(pb.STAT_RESPONSE, data[:-3])


def test_envelopes():
    assert open_envelope(envelope(0, b"{}")) == b"{}"
    with pytest.raises(pb.InvalidInput):
        open_envelope(envelope(0, b"{}") + b"x")


SERVICE = ConnectService("filesystem.Filesystem")


class Handler(ConnectHandler):
    service = SERVICE


@SERVICE.unary("Stat", pb.STAT_REQUEST, pb.STAT_RESPONSE)
async def stat(handler, request):
    if request["path"] == "/missing":
        raise NotFound("no such file: /missing")
    return {"entry": {**ENTRY, "path": request["path"]}}


@SERVICE.unary("MakeDir", pb.MAKE_DIR_REQUEST, pb.MAKE_DIR_RESPONSE)
async def make_dir(handler, request):
    raise AlreadyExists(f"{request['path']} exists already")


@SERVICE.stream("WatchDir", pb.WATCH_DIR_REQUEST, pb.WATCH_DIR_RESPONSE)
async def watch(handler, request):
    yield {"start": {}}
    yield {"filesystem": {"name": "f.txt", "type": 2}}
    raise NotFound("the directory went away")


@pytest.fixture
async def url():
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(web.Application([(r"/" + SERVICE.name + r"/(?P<method>\w+)", Handler)]))
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()


def frames(body: bytes) -> list[tuple[int, bytes]]:
    out = []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        out.append((flags, body[5 : 5 + size]))
        body = body[5 + size :]
    return out


@pytest.mark.parametrize("codec", ["json", "proto"])
async def test_a_connect_handler_on_the_wire(url, codec):
    """Unary replies and errors, and a server stream that ends with an error, as Connect clients read
    them (E2B's own client does so in tests/e2b/test_filesystem.py, against a real server)."""
    encode = (lambda m, v: json.dumps(pb.to_json(m, v)).encode()) if codec == "json" else pb.to_binary
    decode = (lambda m, b: pb.from_json(m, json.loads(b))) if codec == "json" else pb.from_binary
    base = f"{url}/{SERVICE.name}/"
    async with httpx.AsyncClient() as client:
        unary = {"Content-Type": f"application/{codec}", "Connect-Protocol-Version": "1"}
        r = await client.post(base + "Stat", content=encode(pb.STAT_REQUEST, {"path": "/home/user/b"}), headers=unary)
        assert r.status_code == 200 and r.headers["content-type"] == f"application/{codec}"
        entry = decode(pb.STAT_RESPONSE, r.content)["entry"]
        assert entry["path"] == "/home/user/b" and entry["size"] == 2**40
        r = await client.post(base + "Stat", content=encode(pb.STAT_REQUEST, {"path": "/missing"}), headers=unary)
        assert r.status_code == 404 and r.json() == {"code": "not_found", "message": "no such file: /missing"}
        r = await client.post(base + "MakeDir", content=encode(pb.MAKE_DIR_REQUEST, {"path": "/x"}), headers=unary)
        assert r.status_code == 409 and r.json()["code"] == "already_exists"
        r = await client.post(base + "Move", content=b"", headers=unary)
        assert r.json()["code"] == "unimplemented"
        streaming = {"Content-Type": f"application/connect+{codec}"}
        body = envelope(0, encode(pb.WATCH_DIR_REQUEST, {"path": "/home/user"}))
        r = await client.post(base + "WatchDir", content=body, headers=streaming)
        assert r.status_code == 200 and r.headers["content-type"] == f"application/connect+{codec}"
        *messages, (flags, end) = frames(r.content)
        assert [decode(pb.WATCH_DIR_RESPONSE, m) for _, m in messages] == [
            {"start": {}, "filesystem": None, "keepalive": None},
            {"start": None, "filesystem": {"name": "f.txt", "type": 2, "entry": None}, "keepalive": None},
        ]
        assert flags == 2 and json.loads(end) == {"error": {"code": "not_found", "message": "the directory went away"}}
        # a unary content type on a streaming method (and the reverse) is refused
        r = await client.post(base + "WatchDir", content=body, headers=unary)
        assert r.status_code == 400 and r.json()["code"] == "invalid_argument"


async def test_a_backend_without_the_filesystem_says_so():
    class Bare(SandboxBackend):
        name = "bare"

    Bare.__abstractmethods__ = frozenset()  # the abstract ones are not what is tested here
    bare = Bare()
    for call in (
        bare.stat_file("s", "p"),
        bare.list_tree("s", "p", 1),
        bare.make_dir("s", "p"),
        bare.move_file("s", "p", "q"),
        bare.watch_dir("s", "p", False),
    ):
        with pytest.raises(BackendUnavailable, match="not supported by the bare backend"):
            await call
