"""The MCP server behind a real JupyterHub (tests/hub/conftest.py's ``hub``): the sandbox service
serves ``sandbox/mcp`` with the Hub's authentication, through the Hub's proxy, and the sandboxes it
makes are the Hub user's. Also ``jupyter sandbox mcp`` pointed at the service with a Hub token."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

REPO = Path(__file__).resolve().parents[2]


def texts(result: CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


@asynccontextmanager
async def http_session(hub: Any, token: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=httpx2.Timeout(180)) as http,
        streamable_http_client(hub.service_url + "sandbox/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(hub: Any, token: str) -> AsyncIterator[ClientSession]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "JUPYTER_SANDBOX_URL": hub.service_url,  # the service's REST routes, with a Hub token
        "JUPYTER_SANDBOX_TOKEN": token,
    }
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or shutil.which("jupyter")
    assert jupyter
    params = StdioServerParameters(command=jupyter, args=["sandbox", "mcp", "--no-embedded"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


Connect = Callable[[Any, str], AbstractAsyncContextManager[ClientSession]]


@pytest.fixture(params=["http", "stdio"])
def connect(request: pytest.FixtureRequest) -> Connect:
    return http_session if request.param == "http" else stdio_session


async def test_a_hub_user_runs_code_in_their_own_sandboxes(hub: Any, connect: Connect) -> None:
    alice_token, bob_token = hub.token_for("alice"), hub.token_for("bob")
    async with connect(hub, alice_token) as alice:
        assert "run_code" in {tool.name for tool in (await alice.list_tools()).tools}
        result = await alice.call_tool("run_code", {"code": "1+1"})
        assert not result.is_error and "2" in texts(result), texts(result)
        listed = "".join(texts(await alice.call_tool("list_sandboxes", {})))
        assert '"name": "mcp"' in listed
        # the service made it for the Hub user
        models = httpx.get(
            hub.service_url + "sandbox/api/sandboxes", headers={"Authorization": f"token {alice_token}"}, timeout=60
        ).json()
        assert [m["owner"] for m in models if m["name"] == "mcp"] == [hub.users["alice"]]
        async with connect(hub, bob_token) as bob:
            assert '"name": "mcp"' not in "".join(texts(await bob.call_tool("list_sandboxes", {})))
            refused = await bob.call_tool("kill_sandbox", {"sandbox": models[0]["id"]})
            assert refused.is_error
        assert not (await alice.call_tool("kill_sandbox", {"sandbox": "mcp"})).is_error


def test_the_route_refuses_requests_without_a_hub_token(hub: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    narrow = hub.token_for("alice", scopes=[f"read:users:name!user={hub.users['alice']}"])
    for token in (None, "not-a-token", narrow):
        auth = {"Authorization": f"token {token}"} if token else {}
        r = httpx.post(hub.service_url + "sandbox/mcp", json=body, headers={**headers, **auth}, timeout=60)
        assert r.status_code in (401, 403), (token, r.status_code, r.text)
