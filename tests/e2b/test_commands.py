"""The unmodified ``e2b`` SDK's commands and PTY against a real server (Docker, local and kubernetes
backends; kubernetes on the k8s_api fixture's endpoint):
envd's process service on the data plane (server/e2b_process.py). The SDK gets only E2B_API_URL,
E2B_SANDBOX_URL and E2B_API_KEY (no E2B_DEBUG); the server has two users (tests/servers.py
HeaderUsers), its token is alice's.
"""

from __future__ import annotations

import asyncio
import os
import struct

import httpx
import pytest
from e2b import AsyncSandbox, CommandExitException, InvalidArgumentException, PtySize, Sandbox
from e2b.envd.process import process_pb

from conftest import require_docker
from servers import JupyterServer, backend_config

PLANE = "sandbox/e2b/plane"
PROCESS_METHODS = ("List", "SendInput", "SendSignal", "CloseStdin", "Update")


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("docker", marks=pytest.mark.docker),
        "local",
        pytest.param("kubernetes", marks=pytest.mark.docker),
    ],
)
def server(request, tmp_path_factory):
    if request.param == "docker":
        require_docker()
    k8s_api = request.getfixturevalue("k8s_api") if request.param == "kubernetes" else None
    config = backend_config(request.param, k8s_api)
    home = tmp_path_factory.mktemp(f"e2bproc-{request.param}")
    with JupyterServer(home, users=True, config=config) as running:
        running.backend = request.param
        yield running


@pytest.fixture(scope="module")
def sbx(server):
    """One sandbox for the module's tests, made by the SDK as any E2B program would."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("E2B_DEBUG", raising=False)
        env.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
        env.setenv("E2B_SANDBOX_URL", server.url + PLANE)
        env.setenv("E2B_API_KEY", server.token)
        sandbox = Sandbox.create(timeout=600)
        yield sandbox
        sandbox.kill()


def test_run_with_cwd_and_env(sbx):
    sbx.commands.run("mkdir -p sub")  # (relative: on the local backend /home/user is the host's)
    result = sbx.commands.run(
        'echo "hi $GREETING from $(pwd)"; echo err >&2', cwd="/home/user/sub", envs={"GREETING": "there"}
    )
    assert result.exit_code == 0
    assert result.stdout.strip().startswith("hi there from ") and result.stdout.strip().endswith("/sub")
    assert result.stderr == "err\n"
    seen: list[str] = []
    sbx.commands.run("echo one; echo two", on_stdout=seen.append)
    assert "".join(seen) == "one\ntwo\n"


def test_a_failing_command_raises_with_its_exit_code(sbx):
    with pytest.raises(CommandExitException) as info:
        sbx.commands.run("echo partial; exit 7")
    assert info.value.exit_code == 7
    assert info.value.stdout == "partial\n"


def test_background_run_connect_list_and_kill(sbx):
    handle = sbx.commands.run("echo started; sleep 300", background=True)
    assert handle.pid > 0
    listed = {p.pid: p for p in sbx.commands.list()}
    assert handle.pid in listed and listed[handle.pid].cmd == "/bin/bash"
    again = sbx.commands.connect(handle.pid)
    assert again.pid == handle.pid
    assert sbx.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException) as info:
        again.wait()
    assert info.value.exit_code == -1
    assert handle.pid not in [p.pid for p in sbx.commands.list()]
    assert sbx.commands.kill(handle.pid) is False  # gone: the SDK's not-found


def test_send_stdin_then_close_it(sbx):
    handle = sbx.commands.run("read line; echo got:$line; cat", background=True, stdin=True)
    handle.send_stdin("first\n")
    handle.send_stdin("rest of it")
    sbx.commands.close_stdin(handle.pid)
    result = handle.wait()
    assert result.stdout == "got:first\nrest of it"


def test_pty_input_resize_and_kill(sbx):
    terminal = sbx.pty.create(PtySize(rows=24, cols=80), timeout=60)
    events = iter(terminal)
    output = bytearray()

    def read_until(marker: bytes) -> str:
        """The terminal's output until ``marker`` (typed input echoes as typed, so markers are computed)."""
        for _, _, pty in events:
            output.extend(pty or b"")
            if marker in output:
                return output.decode(errors="replace")
        raise AssertionError(f"the terminal ended before {marker!r}: {output!r}")

    sbx.pty.send_stdin(terminal.pid, b"stty size; echo first-$((6*7))\n")
    assert "24 80" in read_until(b"first-42")
    sbx.pty.resize(terminal.pid, PtySize(rows=40, cols=120))
    sbx.pty.send_stdin(terminal.pid, b"stty size; echo second-$((6*7))\n")
    assert "40 120" in read_until(b"second-42")
    assert sbx.pty.kill(terminal.pid) is True
    with pytest.raises(CommandExitException):
        terminal.wait()


def test_stream_input_writes_each_chunk(sbx):
    handle = sbx.commands.run("head -c 11", background=True, stdin=True)
    sbx.commands.stream_input(handle.pid, ["hello ", b"world"])
    assert handle.wait().stdout == "hello world"


def test_commands_run_as_the_sandboxs_user_only(server, sbx):
    uid = sbx.commands.run("id -u").stdout.strip()
    if server.backend == "local":  # a local sandbox's processes are the server user's (not a boundary)
        assert uid == str(os.getuid())
    else:
        assert uid != "0"
    with pytest.raises(InvalidArgumentException, match="sandbox's user"):
        sbx.commands.run("id", user="root")


def test_another_users_key_or_token_finds_no_process_and_none_is_a_401(server, sbx):
    handle = sbx.commands.run("sleep 300", background=True)
    bob_key = server.api("POST", "keys", json={"name": "t"}, user="bob").json()["key"]
    bobs = server.api("POST", "sandboxes", json={}, user="bob").json()
    bob_token = bobs["e2b_url"].rstrip("/").rsplit("/", 1)[-1]  # his own sandbox's access token
    url = server.url + PLANE + "/process.Process/"
    target = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49983"}
    selected = {"process": {"pid": handle.pid}, "signal": "SIGNAL_SIGKILL", "input": {"stdin": "eA=="}}
    for credential in ({"X-API-KEY": bob_key}, {"X-Access-Token": bob_token}):
        unary = {**target, **credential, "Content-Type": "application/json"}
        for method in PROCESS_METHODS:
            r = httpx.post(url + method, headers=unary, json=selected)
            assert r.status_code == 404 and r.json()["code"] == "not_found", (method, r.text)
        streaming = {**target, **credential, "Content-Type": "application/connect+json"}
        for method in ("Start", "Connect", "StreamInput"):
            empty = b"\x00\x00\x00\x00\x02{}"
            assert httpx.post(url + method, headers=streaming, content=empty).status_code == 404, method
    assert handle.pid in [p.pid for p in sbx.commands.list()]  # bob's SendSignal did nothing
    unary = {**target, "Content-Type": "application/json"}
    assert httpx.post(url + "List", headers=unary, json={}).status_code == 401
    # the owner's own key works on the same route
    r = httpx.post(url + "List", headers={**unary, "X-API-KEY": server.token}, json={})
    assert r.status_code == 200 and handle.pid in [p["pid"] for p in r.json()["processes"]]
    sbx.commands.kill(handle.pid)
    assert server.api("DELETE", f"sandboxes/{bobs['id']}", user="bob").status_code == 204


def test_the_async_sdk_too(sbx):
    async def use() -> tuple[str, int, list[int]]:
        asbx = await AsyncSandbox.connect(sbx.sandbox_id)
        out = (await asbx.commands.run("echo async $X", envs={"X": "ok"})).stdout
        handle = await asbx.commands.run("sleep 300", background=True)
        assert await asbx.commands.kill(handle.pid) is True
        with pytest.raises(CommandExitException) as info:
            await handle.wait()
        return out, info.value.exit_code, [p.pid for p in await asbx.commands.list()]

    out, code, running = asyncio.run(use())
    assert out == "async ok\n" and code == -1 and running == []


def test_binary_protobuf_and_keepalives_while_quiet(server, sbx):
    """A Connect client speaking binary protobuf (the SDK's own messages encode and decode it) that
    asks for a keepalive every second: a command quiet for 3 s gets at least one before its end."""
    request = process_pb.StartRequest(process=process_pb.ProcessConfig(cmd="sh", args=["-c", "sleep 3; echo done"]))
    body = request.to_binary()
    headers = {
        "E2b-Sandbox-Id": sbx.sandbox_id,
        "E2b-Sandbox-Port": "49983",
        "X-API-KEY": server.token,
        "Content-Type": "application/connect+proto",
        "Keepalive-Ping-Interval": "1",
    }
    url = server.url + PLANE + "/process.Process/Start"
    r = httpx.post(url, headers=headers, content=struct.pack(">BI", 0, len(body)) + body, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "application/connect+proto"
    events, data = [], r.content
    while data:
        flags, size = struct.unpack(">BI", data[:5])
        if not flags & 2:  # the end-of-stream envelope is JSON
            events.append(process_pb.StartResponse.from_binary(data[5 : 5 + size]).event.event)
        data = data[5 + size :]
    kinds = [e.field for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "keepalive" in kinds
    assert b"".join(e.value.output.value for e in events if e.field == "data") == b"done\n"
    assert events[-1].value.exit_code == 0
