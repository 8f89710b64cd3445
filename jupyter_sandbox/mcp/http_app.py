"""The MCP server behind the HTTP route (server/mcp_http.py): the SDK's streamable HTTP session
manager over the SandboxManager of this process.

Stateless: each POST is served on its own (no MCP session kept between requests), so a request is
answered by whichever tornado handler got it, and its owner is that request's authenticated user,
which the route puts in the ASGI scope under ``OWNER_KEY``. Progress notifications of a long run
stream back on the POST's own response (SSE).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings

from ..core.manager import SandboxManager
from .access import ManagerAccess
from .tools import build_server

OWNER_KEY = "jupyter_sandbox.owner"


class MCPHttp:
    """One per server: the MCP server, its session manager, and the task that runs the latter."""

    def __init__(self, manager: SandboxManager) -> None:
        self.manager = manager
        self.server = build_server(self.access_for)
        # Jupyter's handler checks Host and Origin (and authenticates) before the SDK sees the request.
        self.server.streamable_http_app(
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.sessions = self.server.session_manager
        self._running: asyncio.Future[None] | None = None
        self._started: asyncio.Future[None] | None = None
        self._stop = asyncio.Event()

    def access_for(self, ctx: Context) -> ManagerAccess:
        request = ctx.request_context.request
        scope: dict[str, Any] = getattr(request, "scope", {})
        owner = scope.get(OWNER_KEY)
        if not isinstance(owner, str):  # only the route calls this server; a request without one is a bug
            raise RuntimeError("an MCP request reached the server without an authenticated owner")
        return ManagerAccess(self.manager, owner)

    async def start(self) -> None:
        """Run the session manager in a task of this loop (its task group serves the requests)."""
        if self._started is None:
            self._started = started = asyncio.get_running_loop().create_future()
            self._running = asyncio.ensure_future(self._run(started))
        await asyncio.shield(self._started)

    async def _run(self, started: asyncio.Future[None]) -> None:
        try:
            async with self.sessions.run():
                started.set_result(None)
                await self._stop.wait()
        except BaseException as e:
            if not started.done():
                started.set_exception(RuntimeError(f"the MCP session manager did not start: {e!r}"))
            raise

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.start()
        await self.sessions.handle_request(scope, receive, send)

    async def stop(self) -> None:
        if self._running is not None:
            self._stop.set()
            with contextlib.suppress(Exception):
                await self._running
