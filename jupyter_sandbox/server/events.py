"""Each user's own stream of events: a websocket under the extension's routes.

jupyter_server's event bus (``/api/events/subscribe``) reaches every user with the events
permission, and any of them may post to it (``POST /api/events``); so sandbox events are not
sent there. Here a subscriber gets only what concerns them, by the owner rule of the REST
handlers (``owner_of``), one JSON text message each:
- the events of their sandboxes (event_schemas/sandbox/v1.yaml);
- the interrupts of notebook kernels they made through the server's kernels API
  (event_schemas/kernel_interrupted/v1.yaml), so that a sandbox cell running for that kernel
  stops too. jupyter_server's own kernel_actions events cannot say that: anyone may forge them.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import websocket

from .handlers import AUTH_RESOURCE, api_path, owner_of


class EventStreams:
    """The open event websockets by owner: what is sent to an owner reaches their sockets only.
    ``send`` is a SandboxManager listener."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[EventsHandler]] = {}

    def add(self, owner: str, socket: EventsHandler) -> None:
        self._sockets.setdefault(owner, set()).add(socket)

    def remove(self, owner: str, socket: EventsHandler) -> None:
        sockets = self._sockets.get(owner, set())
        sockets.discard(socket)
        if not sockets:
            self._sockets.pop(owner, None)

    def send(self, owner: str, event: dict[str, Any]) -> None:
        message = json.dumps(event)
        for socket in list(self._sockets.get(owner, ())):
            socket.send(message)


class EventsHandler(WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    """(WebSocketMixin: the origin check, pings, and a 403 rather than a login redirect.)"""

    auth_resource = AUTH_RESOURCE
    _owner = ""

    @ws_authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: Any) -> None:
        self._owner = owner_of(self)
        await super().get(*args, **kwargs)

    @property
    def streams(self) -> EventStreams:
        streams: EventStreams = self.settings["sandbox_event_streams"]
        return streams

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.streams.add(self._owner, self)

    def send(self, message: str) -> None:
        try:
            self.write_message(message)
        except websocket.WebSocketClosedError:  # the peer left without a close handshake
            self.streams.remove(self._owner, self)

    def on_message(self, message: str | bytes) -> None:
        pass  # the stream goes one way; what a client sends is ignored

    def on_close(self) -> None:
        self.streams.remove(self._owner, self)


ROUTES: list[tuple[str, type]] = [(api_path("events"), EventsHandler)]
