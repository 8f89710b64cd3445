"""A terminal in a sandbox: ``GET sandbox/api/sandboxes/{id_or_name}/terminal``, a websocket.

A login shell runs in a pty through the backend's ``exec_stream`` (the process the E2B process
service and the commands API start too), so it has the sandbox's limits, user and network. The
websocket speaks terminado's protocol, the one JupyterLab's terminal widget speaks to
``/api/terminals/websocket/{name}``: text frames of JSON arrays, ``["stdin", text]`` and
``["set_size", rows, cols]`` from the page, ``["stdout", text]`` and ``["disconnect", code]``
from the server. Closing the websocket ends the shell (SIGHUP, as closing a terminal window does).
Query ``rows``/``cols`` give the first size. The owner's sandboxes only: another user's is 404.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import signal
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket

from ..backends.exec_stream import ExecStream
from ..core.manager import SandboxManager
from ..errors import InvalidInput, SandboxError
from .handlers import AUTH_RESOURCE, api_path, authorized_to, owner_of, refuse_upgrade

SHELL = ["/bin/bash", "-l"]
DEFAULT_SIZE = (24, 80)  # rows, cols until the page says its size
LARGEST_SIZE = 1000  # rows or cols beyond this are a bad request, not a terminal


def terminal_size(rows: Any, cols: Any) -> tuple[int, int]:
    """(rows, cols) from the page, checked (InvalidInput when not whole numbers in 1..1000)."""
    try:
        size = (int(rows), int(cols))
    except (TypeError, ValueError):
        raise InvalidInput(f"a terminal size is two whole numbers, not {rows!r} x {cols!r}", field="size") from None
    if not all(1 <= n <= LARGEST_SIZE for n in size):
        raise InvalidInput(f"a terminal size is 1..{LARGEST_SIZE} rows and columns, not {size}", field="size")
    return size


class TerminalHandler(WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    """One shell in one sandbox per websocket. (WebSocketMixin: the origin check, pings, and a 403
    rather than a login redirect.)"""

    auth_resource = AUTH_RESOURCE
    _stream: ExecStream | None = None
    _reader: asyncio.Task[None] | None = None
    _hangup: asyncio.Task[None] | None = None  # kept: a task no one holds may be collected mid-way

    @ws_authenticated
    @authorized_to("execute")
    async def get(self, id_or_name: str) -> None:
        manager: SandboxManager = self.settings["sandbox_manager"]
        try:
            size = terminal_size(self.get_query_argument("rows", "24"), self.get_query_argument("cols", "80"))
            # using a sandbox's terminal counts as its activity (an idle cull spares it)
            sandbox_id = manager.registry.use(owner_of(self), id_or_name).model.id
            self._stream = await manager.backend.exec_stream(
                sandbox_id, SHELL, env={"TERM": "xterm-256color"}, pty=size, tag="terminal"
            )
        except SandboxError as e:
            refuse_upgrade(self, e)
            return
        await super().get(id_or_name)

    def open(self, *args: Any, **kwargs: Any) -> None:
        assert self._stream is not None
        self._reader = asyncio.ensure_future(self._forward(self._stream))
        super().open(*args, **kwargs)  # WebSocketMixin's pings

    async def _forward(self, stream: ExecStream) -> None:
        """The terminal's output to the page, then the shell's end."""
        # a UTF-8 character may be split between two reads
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            async for event in stream.events():
                if event.kind == "exit":
                    await self.write_message(json.dumps(["disconnect", 1]))
                    self.close()
                    return
                text = decoder.decode(event.data)
                if text:
                    await self.write_message(json.dumps(["stdout", text]))
        except websocket.WebSocketClosedError:
            return

    async def on_message(self, message: str | bytes) -> None:
        assert self._stream is not None
        try:
            kind, *args = json.loads(message)
            if kind == "stdin":
                await self._stream.write(str(args[0]).encode())
            elif kind == "set_size":
                await self._stream.resize(*terminal_size(args[0], args[1]))
        except SandboxError as e:  # the shell has ended, or a size out of range: say it in the log
            self.log.info("jupyter-sandbox: terminal input not taken: %s", e)
        except (ValueError, TypeError, IndexError) as e:  # a malformed frame: the socket stays open
            self.log.warning("jupyter-sandbox: dropped a malformed terminal message: %s", e)

    def on_close(self) -> None:
        if self.ping_callback is not None:
            self.ping_callback.stop()
        if self._reader is not None:
            self._reader.cancel()
        stream = self._stream
        if stream is not None and stream.running:
            self._hangup = asyncio.ensure_future(self._hang_up(stream))

    async def _hang_up(self, stream: ExecStream) -> None:
        try:
            await stream.signal(signal.SIGHUP)
        except SandboxError as e:  # it ended meanwhile, or the sandbox is gone
            self.log.info("jupyter-sandbox: terminal shell %s already gone: %s", stream.pid, e)


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("sandboxes/{id_or_name}/terminal"), TerminalHandler),
]
