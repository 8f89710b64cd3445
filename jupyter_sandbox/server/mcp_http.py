"""``{base_url}sandbox/mcp``: the MCP server over streamable HTTP, inside Jupyter Server.

The SDK's transport is an ASGI app; Jupyter Server is tornado. ``MCPHandler`` authenticates the
request the way every route does (Jupyter's identity provider: token header or cookie; in the
sandbox service, JupyterHub's), then hands it to the ASGI app with the owner in its scope, and
writes what the app sends back as it comes (an SSE response streams). Without the ``mcp`` package
the route answers 503 saying how to install it.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from jupyter_server.utils import url_path_join
from tornado import web

from ..mcp import missing
from .handlers import SandboxAPIHandler, authorized_to

if TYPE_CHECKING:
    from ..mcp.http_app import MCPHttp

PATH = "sandbox/mcp"
SETTING = "sandbox_mcp"  # the MCPHttp of this server, made on first use
SKIPPED_HEADERS = {"authorization", "cookie"}  # the SDK needs neither: the owner comes in the scope
HOP_HEADERS = {"content-length", "transfer-encoding", "connection"}  # tornado sets its own


class MCPHandler(SandboxAPIHandler):
    _gone: asyncio.Event | None = None

    def mcp_http(self) -> MCPHttp:
        served: MCPHttp | None = self.settings.get(SETTING)
        if served is None:
            from ..mcp.http_app import MCPHttp

            served = self.settings[SETTING] = MCPHttp(self.manager)
        return served

    async def serve(self) -> None:
        why = missing()
        if why is not None:
            self.set_status(503)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": why, "reason": "Service Unavailable"}))
            return
        from ..mcp.http_app import OWNER_KEY

        self._gone = asyncio.Event()
        request = self.request
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": request.version.removeprefix("HTTP/"),
            "method": request.method,
            "scheme": request.protocol,
            "path": "/",
            "raw_path": b"/",
            "root_path": "",
            "query_string": (request.query or "").encode("latin-1"),
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in request.headers.get_all()
                if k.lower() not in SKIPPED_HEADERS
            ],
            "client": (request.remote_ip or "", 0),
            "server": None,
            OWNER_KEY: self.owner,
        }
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": request.body or b"", "more_body": False}
            assert self._gone is not None
            await self._gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.set_status(message["status"])
                self.clear_header("Content-Type")  # tornado's default; the app sends its own
                for name, value in message.get("headers", []):
                    key = name.decode("latin-1")
                    if key.lower() not in HOP_HEADERS:
                        self.add_header(key, value.decode("latin-1"))
            elif message["type"] == "http.response.body" and not self._finished:
                self.write(message.get("body", b""))
                if message.get("more_body"):
                    await self.flush()

        await self.mcp_http().handle(scope, receive, send)
        if not self._finished:
            self.finish()

    def on_connection_close(self) -> None:
        if self._gone is not None:
            self._gone.set()

    # Every verb the transport knows (POST: messages; GET: a server's stream; DELETE: end a session).
    # "execute": a tool call may run code.
    @web.authenticated
    @authorized_to("execute")
    async def post(self) -> None:
        await self.serve()

    @web.authenticated
    @authorized_to("execute")
    async def get(self) -> None:
        await self.serve()

    @web.authenticated
    @authorized_to("execute")
    async def delete(self) -> None:
        await self.serve()


async def stop(settings: dict[str, Any]) -> None:
    """End the MCP session manager's task, if a request started it."""
    served: MCPHttp | None = settings.get(SETTING)
    if served is not None:
        await served.stop()


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [(url_path_join("/", PATH) + "/?", MCPHandler)]
