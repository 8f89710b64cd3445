"""The MCP server (issue 24), driven by the mcp SDK's own client over both transports: stdio
(`jupyter sandbox mcp`, a subprocess that finds the server as the client does) and streamable HTTP
(`{base_url}sandbox/mcp`), against a real Jupyter server with the extension on Docker.

Two users: the server's token is alice, ``bob-token`` is bob (servers.TwoUsers).
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
import pytest
from jupyter_server.serverapp import _has_tornado_web_authenticated
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ImageContent, TextContent

from jupyter_sandbox.embedded import EmbeddedConnection, EmbeddedManager
from jupyter_sandbox.mcp.access import ConnectionAccess
from jupyter_sandbox.models import SandboxRequest
from jupyter_sandbox.server import mcp_http

from servers import IMAGE, SESSION, SESSION_LABEL, JupyterServer

REPO = Path(__file__).resolve().parent.parent
TOOLS = {
    "create_sandbox",
    "list_sandboxes",
    "kill_sandbox",
    "run_code",
    "create_context",
    "read_file",
    "write_file",
    "list_files",
    "run_command",
    "install_packages",
}
PNG_MAGIC = "iVBORw0KGgo"  # base64 of a PNG's first bytes


@pytest.fixture(scope="module")
def mcp_server(docker_ready, tmp_path_factory):
    config = {"ServerApp": {"identity_provider_class": "servers.TwoUsers"}}
    with JupyterServer(tmp_path_factory.mktemp("mcp"), config=config) as server:
        yield server


def token_of(server: JupyterServer, user: str) -> str:
    return server.token if user == "alice" else "bob-token"


@asynccontextmanager
async def http_session(server: JupyterServer, user: str = "alice"):
    headers = {"Authorization": f"token {token_of(server, user)}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(180, read=300)) as http,
        streamable_http_client(server.url + "sandbox/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(server: JupyterServer, user: str = "alice"):
    # `jupyter sandbox mcp` as a desktop client starts it: the server comes from the environment
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "JUPYTER_SANDBOX_URL": server.url,
        "JUPYTER_SANDBOX_TOKEN": token_of(server, user),
    }
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or shutil.which("jupyter")
    assert jupyter, "the jupyter command is installed with jupyter_core"
    params = StdioServerParameters(command=jupyter, args=["sandbox", "mcp", "--no-embedded"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


SESSIONS = {"http": http_session, "stdio": stdio_session}


@pytest.fixture(params=sorted(SESSIONS))
def connect(request, mcp_server):
    """``connect(user)``: an MCP client session of that user over the test's transport."""
    return lambda user="alice": SESSIONS[request.param](mcp_server, user)


def texts(result: CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


async def call(session: ClientSession, tool: str, **arguments) -> CallToolResult:
    return await session.call_tool(tool, arguments)


async def test_lists_the_tools_and_runs_code(connect):
    async with connect() as session:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} >= TOOLS
        assert all(tool.description for tool in listed.tools)
        result = await call(session, "run_code", code="1+1")
        assert not result.is_error, texts(result)
        assert "2" in texts(result)
        # state persists between calls in the sandbox
        await call(session, "run_code", code="x = 41")
        assert "42" in texts(await call(session, "run_code", code="x + 1"))


async def test_a_plot_comes_back_as_an_image(connect):
    async with connect() as session:
        code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
        result = await call(session, "run_code", code=code)
        assert not result.is_error, texts(result)
        images = [b for b in result.content if isinstance(b, ImageContent)]
        assert images and images[0].mime_type == "image/png"
        assert images[0].data.startswith(PNG_MAGIC)


async def test_an_error_comes_back_with_its_traceback(connect):
    async with connect() as session:
        result = await call(session, "run_code", code="def f():\n    return 1 / 0\nf()")
        assert result.is_error
        said = "\n".join(texts(result))
        assert "ZeroDivisionError" in said and "f()" in said and "\x1b[" not in said


async def test_a_file_round_trip(connect):
    async with connect() as session:
        made = await call(session, "write_file", path="notes/hello.txt", content="héllo\nworld\n")
        assert not made.is_error, texts(made)
        assert texts(await call(session, "read_file", path="notes/hello.txt")) == ["héllo\nworld\n"]
        listing = "\n".join(texts(await call(session, "list_files", path="notes")))
        assert "hello.txt" in listing
        # the code sees the file, and a file the code writes comes back
        result = await call(session, "run_code", code="open('notes/hello.txt').read().upper()")
        assert "'HÉLLO\\nWORLD\\n'" in texts(result)
        # and as a resource
        read = await session.read_resource("sandbox://mcp/files/notes/hello.txt")  # the default sandbox
        assert [c.text for c in read.contents] == ["héllo\nworld\n"]
        with pytest.raises(MCPError, match=r"nope\.txt") as missing:
            await session.read_resource("sandbox://mcp/files/nope.txt")
        assert "Error creating resource" not in str(missing.value)  # the SDK's word for a crash
        templates = await session.list_resource_templates()
        assert any(t.uri_template.startswith("sandbox://") for t in templates.resource_templates)


async def test_commands_and_packages_without_network(connect):
    async with connect() as session:
        result = await call(session, "run_command", command="echo hi; echo oops >&2; exit 3")
        assert result.is_error
        assert texts(result) == ["exit code 3", "stdout:\nhi\n", "stderr:\noops\n"]
        assert texts(await call(session, "run_command", command="pwd")) == ["exit code 0", "stdout:\n/home/user\n"]
        slow = await call(session, "run_command", command="echo begun; sleep 60", timeout=3)
        assert slow.is_error and texts(slow)[0] == "killed after its timeout of 3 s", texts(slow)
        assert texts(slow)[1:] == ["stdout:\nbegun\n"]  # what it wrote before its timeout is kept
        # the kill took what the command started too (its process group): no `sleep 60` is left
        each = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done"
        left = each + " | grep -c '^sleep 60' || true"
        assert texts(await call(session, "run_command", command=left)) == ["exit code 0", "stdout:\n0\n"]
        assert "bash" in texts(await call(session, "run_command", command="echo $BASH"))[1]  # bash -l -c
        for bad, field in (({"timeout": 0}, "timeout"), ({"cwd": "/no/such/dir"}, "/no/such/dir")):
            refused = await call(session, "run_command", command="true", **bad)
            assert refused.is_error and field in texts(refused)[0], texts(refused)
        assert texts(await call(session, "run_command", command="echo again")) == ["exit code 0", "stdout:\nagain\n"]
        refused = await call(session, "install_packages", packages=["requests"])
        assert refused.is_error
        assert "has no network" in texts(refused)[0] and "network=true" in texts(refused)[0]


async def test_stdio_commands_with_no_server_go_through_the_embedded_managers_command_api(docker_ready):
    # `jupyter sandbox mcp` with no server found: ConnectionAccess over the embedded connection
    embedded = EmbeddedManager("docker", default_image=IMAGE, extra_labels={SESSION_LABEL: SESSION})
    access = ConnectionAccess(EmbeddedConnection(embedded))
    try:
        model = await access.create(SandboxRequest(name="mcp-embedded"))
        done = await access.run_command(model.id, "echo out; echo err >&2; exit 4", "/tmp", 30)
        assert (done.exit_code, done.stdout, done.stderr, done.failed) == (4, "out\n", "err\n", True)
        slow = await access.run_command(model.id, "echo begun; sleep 60", None, 3)
        assert slow.timed_out and slow.stdout == "begun\n" and slow.ending == "killed after its timeout of 3 s"
    finally:
        embedded.run(embedded.manager.shutdown(), timeout=120)


async def test_bad_input_comes_back_as_a_tool_error_saying_what_is_wrong(connect):
    async with connect() as session:
        result = await call(session, "create_sandbox", memory="lots")
        assert result.is_error and "memory" in texts(result)[0], texts(result)
        missing = await call(session, "run_code", code="1", sandbox="no-such-sandbox")
        assert missing.is_error and "no-such-sandbox" in texts(missing)[0], texts(missing)


async def test_a_second_user_sees_none_of_the_first_users_sandboxes(connect):
    async with connect("alice") as alice:
        made = await call(alice, "create_sandbox", name="alices")
        assert not made.is_error, texts(made)
        assert "alices" in "".join(texts(await call(alice, "list_sandboxes")))
        async with connect("bob") as bob:
            assert "alices" not in "".join(texts(await call(bob, "list_sandboxes")))
            for tool, args in [
                ("run_code", {"code": "1", "sandbox": "alices"}),
                ("read_file", {"path": "x", "sandbox": "alices"}),
                ("kill_sandbox", {"sandbox": "alices"}),
            ]:
                refused = await call(bob, tool, **args)
                assert refused.is_error and "alices" in texts(refused)[0], (tool, texts(refused))
        assert not (await call(alice, "kill_sandbox", sandbox="alices")).is_error


async def test_a_run_past_its_timeout_ends_with_a_clear_error_and_the_sandbox_stays_usable(connect):
    async with connect() as session:
        await call(session, "run_code", code="kept = 'still here'")
        progress: list[tuple[float, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        result = await session.call_tool("run_code", {"code": code, "timeout": 8}, progress_callback=on_progress)
        assert result.is_error
        said = "\n".join(texts(result))
        assert "TimeoutError" in said and "timed out" in said.lower(), said
        assert any(message and "started" in message for _, message in progress), progress
        assert any(message and message.startswith("running for") for _, message in progress), progress
        after = await call(session, "run_code", code="kept")
        assert not after.is_error and "'still here'" in texts(after)


def test_unauthenticated_http_is_refused(mcp_server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    r = httpx.post(mcp_server.url + "sandbox/mcp", json=body, headers=headers, timeout=30)
    assert r.status_code in (401, 403), r.text
    wrong = httpx.post(
        mcp_server.url + "sandbox/mcp", json=body, headers={**headers, "Authorization": "token nope"}, timeout=30
    )
    assert wrong.status_code in (401, 403), wrong.text


def test_every_verb_of_the_route_is_authenticated_and_authorized():
    [(template, handler)] = mcp_http.ROUTES
    assert template == "/sandbox/mcp/?"
    for verb in ("get", "post", "delete"):
        method = getattr(handler, verb)
        assert _has_tornado_web_authenticated(method), verb
        # (functools.wraps copies names; the code object tells whose wrapper it is)
        assert method.__wrapped__.__code__.co_filename.endswith("auth/decorator.py"), verb
    assert handler.auth_resource == "sandboxes"
