"""Each user's own stream of sandbox events: a websocket under the extension's routes.

jupyter_server's event bus (``/api/events/subscribe``) reaches every user with the events
permission, and any of them may post to it; so sandbox events are not sent there. Here a
subscriber gets the events of the sandboxes the REST handlers would show them (``owner_of``),
in the shape of event_schemas/sandbox/v1.yaml, one JSON text message each.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import websocket

from .handlers import AUTH_RESOURCE, api_path, owner_of


class SandboxEventsHandler(WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    """(WebSocketMixin: the origin check, pings, and a 403 rather than a login redirect.)"""

    auth_resource = AUTH_RESOURCE
    _owner: str | None = None

    @ws_authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: Any) -> None:
        self._owner = owner_of(self)
        await super().get(*args, **kwargs)

    @property
    def manager(self):
        return self.settings["sandbox_manager"]

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.manager.add_listener(self._send)

    def _send(self, owner: str, event: dict[str, Any]) -> None:
        if owner != self._owner:
            return
        try:
            self.write_message(json.dumps(event))
        except websocket.WebSocketClosedError:  # the peer left without a close handshake
            self.manager.remove_listener(self._send)

    def on_message(self, message: str | bytes) -> None:
        pass  # the stream goes one way; what a client sends is ignored

    def on_close(self) -> None:
        self.manager.remove_listener(self._send)


ROUTES: list[tuple[str, type]] = [(api_path("events"), SandboxEventsHandler)]
