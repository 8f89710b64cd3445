"""A sandbox's terminal in Hub mode: this server holds no engine, so ``GET
sandbox/api/sandboxes/{id_or_name}/terminal`` (terminal_ws.py on the service) is relayed to the
sandbox service with this server's Hub token, frames passed both ways unchanged. The service's
refusal (404 for a sandbox that is not the user's, 400 for a bad size) is this route's answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from .handlers import AUTH_RESOURCE, api_path, authorized_to, owner_of
from .service_proxy import CONNECT_TIMEOUT, ServiceLink


class TerminalProxyHandler(WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    auth_resource = AUTH_RESOURCE
    _service: websocket.WebSocketClientConnection | None = None
    _relay: asyncio.Task[None] | None = None

    @ws_authenticated
    @authorized_to("execute")
    async def get(self, id_or_name: str) -> None:
        link: ServiceLink = self.settings["sandbox_service"]
        if link.refuses(owner_of(self)):
            raise web.HTTPError(403, link.guest_error().message)
        target = link.websocket_target(api_path(f"sandboxes/{id_or_name}/terminal"))
        if self.request.query:
            target += f"?{self.request.query}"
        try:
            self._service = await websocket.websocket_connect(
                HTTPRequest(target, headers=link.headers(), connect_timeout=CONNECT_TIMEOUT)
            )
        except HTTPClientError as e:  # the service's answer (404, 400, ...) is this route's
            self.set_status(e.code)
            self.set_header("Content-Type", "application/json")
            self.finish(e.response.body if e.response is not None and e.response.body else b"{}")
            return
        except (OSError, StreamClosedError) as e:
            raise web.HTTPError(502, f"the sandbox service at {link.url} did not answer: {e}") from None
        await super().get(id_or_name)
        if self.ws_connection is None:  # the upgrade failed: no one to relay to
            self._service.close()

    def open(self, *args: Any, **kwargs: Any) -> None:
        self._relay = asyncio.ensure_future(self._relay_from_service())
        super().open(*args, **kwargs)  # WebSocketMixin's pings

    async def _relay_from_service(self) -> None:
        service = self._service
        assert service is not None
        try:
            while (message := await service.read_message()) is not None:
                await self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            return
        self.close()  # the shell ended (or the service went): so does the page's terminal

    async def on_message(self, message: str | bytes) -> None:
        if self._service is not None:
            try:
                await self._service.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                pass  # the relay above sees the close and closes this side

    def on_close(self) -> None:
        if self.ping_callback is not None:
            self.ping_callback.stop()
        if self._relay is not None:
            self._relay.cancel()
        if self._service is not None:
            self._service.close()  # the service hangs the shell up


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("sandboxes/{id_or_name}/terminal"), TerminalProxyHandler),
]
