"""A terminal in a sandbox (``GET sandbox/api/sandboxes/{id}/terminal``, issue 26): a login shell
in a pty through the backend's exec stream, over a websocket speaking terminado's protocol, on a
real server and the real Docker engine. The owner's only: another user's sandbox is 404, no token 403.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from servers import JupyterServer


@pytest.fixture(scope="module")
def server(docker_ready, tmp_path_factory):
    with JupyterServer(tmp_path_factory.mktemp("terminal"), users=True) as server:
        yield server


@pytest.fixture
def sandbox(server):
    r = server.api("POST", "sandboxes", json={"name": "term"})
    assert r.status_code == 201, r.text
    yield r.json()
    server.api("DELETE", "sandboxes/term")


async def terminal(
    server: JupyterServer, ref: str, headers: dict[str, str], query: str = ""
) -> WebSocketClientConnection:
    url = server.url.replace("http", "ws", 1) + f"sandbox/api/sandboxes/{ref}/terminal{query}"
    return await websocket_connect(HTTPRequest(url, headers=headers))


async def read_until(ws: WebSocketClientConnection, needle: str, timeout: float = 60) -> str:
    """The terminal's output until ``needle`` shows (or the time runs out: the test fails)."""
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} never came; the terminal showed {seen!r}"
        frame = await asyncio.wait_for(ws.read_message(), left)
        assert frame is not None, f"the websocket closed before {needle!r}; it showed {seen!r}"
        kind, *args = json.loads(frame)
        if kind == "stdout":
            seen += args[0]
        elif kind == "disconnect":
            seen += "\n<disconnect>"
    return seen


def terminal_commands(server: JupyterServer) -> list[dict]:
    r = server.api("GET", "sandboxes/term/commands")
    assert r.status_code == 200, r.text
    return [c for c in r.json() if c["tag"] == "terminal"]


async def test_a_shell_in_the_sandbox_runs_ls_resizes_and_hangs_up_on_close(server, sandbox):
    token = {"Authorization": f"token {server.token}"}
    server.execute("term", "open('made-here.txt', 'w').write('x')")  # the sandbox's code writes a file
    ws = await terminal(server, sandbox["id"], token, "?rows=30&cols=100")
    try:
        ws.write_message(json.dumps(["stdin", "ls; echo uid=$(id -u); stty size\r"]))
        seen = await read_until(ws, "30 100")
        assert "made-here.txt" in seen, seen  # the sandbox's own files: the same home as its code
        assert "uid=" in seen and "uid=0" not in seen, seen  # not root

        ws.write_message(json.dumps(["set_size", 40, 120]))
        ws.write_message(json.dumps(["stdin", "stty size\r"]))
        await read_until(ws, "40 120")

        # a malformed frame or a bad size is dropped; the shell is still there
        ws.write_message("not json")
        ws.write_message(json.dumps(["set_size", 0, 99999]))
        ws.write_message(json.dumps(["stdin", "echo still-$((20+22))\r"]))
        await read_until(ws, "still-42")
        assert len(terminal_commands(server)) == 1
    finally:
        ws.close()
    # closing the terminal hangs up its shell
    deadline = time.monotonic() + 30
    while terminal_commands(server):
        assert time.monotonic() < deadline, terminal_commands(server)
        await asyncio.sleep(0.5)


async def test_exit_in_the_shell_disconnects(server, sandbox):
    ws = await terminal(server, "term", {"Authorization": f"token {server.token}"})
    try:
        ws.write_message(json.dumps(["stdin", "exit\r"]))
        await read_until(ws, "<disconnect>")
    finally:
        ws.close()


async def test_the_terminal_is_the_owners_only(server, sandbox):
    token = {"Authorization": f"token {server.token}"}
    for who, headers, query, status in (
        ("bob", {**token, "X-Test-User": "bob"}, "", 404),  # another user's sandbox is unknown to him
        ("nobody", {}, "", 403),  # no token
        ("wrong token", {"Authorization": "token wrong"}, "", 403),
        ("a bad size", token, "?rows=0&cols=80", 400),
        ("no such sandbox", token, "", 404),
    ):
        ref = "nope" if who == "no such sandbox" else sandbox["id"]
        with pytest.raises(HTTPClientError) as refused:
            await terminal(server, ref, headers, query)
        assert refused.value.code == status, who
    assert terminal_commands(server) == []


async def test_in_hub_mode_the_terminal_goes_through_the_service(server, sandbox, tmp_path):
    """A user's server in Hub mode (no engine) relays the terminal to the sandbox service."""
    env = {"JUPYTER_SANDBOX_SERVICE_URL": server.url, "JUPYTERHUB_API_TOKEN": server.token}
    user_server = JupyterServer(tmp_path / "user-server", env=env)
    await asyncio.to_thread(user_server.start)
    try:
        token = {"Authorization": f"token {user_server.token}"}
        ws = await terminal(user_server, "term", token, "?rows=20&cols=70")
        try:
            ws.write_message(json.dumps(["stdin", "echo via-$((40+2)); stty size\r"]))
            assert "via-42" in await read_until(ws, "20 70")
        finally:
            ws.close()
        for who, headers, ref, query, status in (
            ("nobody", {}, "term", "", 403),
            ("no such sandbox", token, "nope", "", 404),
            ("a bad size", token, "term", "?rows=x&cols=1", 400),
        ):
            with pytest.raises(HTTPClientError) as refused:
                await terminal(user_server, ref, headers, query)
            assert refused.value.code == status, who
    finally:
        await asyncio.to_thread(user_server.stop)
    deadline = time.monotonic() + 30
    while terminal_commands(server):
        assert time.monotonic() < deadline, terminal_commands(server)
        await asyncio.sleep(0.5)
