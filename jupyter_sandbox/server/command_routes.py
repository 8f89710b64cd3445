"""The project's REST routes for commands, directory watches, file details and lifetimes (the
project client's ``sandbox.commands``, ``sandbox.files`` and ``set_timeout``).

Thin: each verb parses its request (models.py), calls core/commands.py (or the manager's files,
or the server's deadlines) for the owner, and writes JSON. Starting a command and watching a
directory answer NDJSON streams, one event a line, each flushed as it happens, with a
``{"type": "keepalive"}`` line during silence; a client that leaves stops reading, and the
command runs on (a background command), while a watch stops.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from ..core.commands import SandboxCommands, command_events, command_info, watch_events
from ..core.deadlines import Deadlines
from ..errors import InvalidInput
from ..models import CommandInput, CommandRequest, MoveRequest, TimeoutRequest
from .e2b_api import DEADLINES_SETTING
from .envd_files import watchers
from .handlers import SandboxAPIHandler, api_path, authorized_to


class StreamingHandler(SandboxAPIHandler):
    """Writes an event generator as NDJSON until it ends or the client leaves."""

    _gone_event: asyncio.Event | None = None

    @property
    def _gone(self) -> asyncio.Event:
        if self._gone_event is None:
            self._gone_event = asyncio.Event()
        return self._gone_event

    def on_connection_close(self) -> None:
        self._gone.set()
        super().on_connection_close()

    @property
    def commands(self) -> SandboxCommands:
        return SandboxCommands(self.manager)

    async def stream(self, events: AsyncGenerator[dict[str, Any], None]) -> None:
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        interval = self.sandbox_app.keepalive_interval
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            while True:
                step = asyncio.ensure_future(anext(events))
                while not step.done():
                    await asyncio.wait({step, gone}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                    if gone.done():
                        step.cancel()
                        await asyncio.gather(step, return_exceptions=True)
                        return
                    if not step.done():
                        await self._send({"type": "keepalive"})
                try:
                    event = step.result()
                except StopAsyncIteration:
                    break
                await self._send(event)
        except StreamClosedError:
            return
        finally:
            gone.cancel()
            await events.aclose()
        self.finish()

    async def _send(self, event: dict[str, Any]) -> None:
        self.write(json.dumps(event) + "\n")
        await self.flush()


def _pid(pid: str) -> int:
    if not pid.isdigit():
        raise InvalidInput(f"a process id is a number, not {pid!r}", field="pid")
    return int(pid)


class CommandsHandler(StreamingHandler):
    @web.authenticated
    @authorized_to("execute")
    async def get(self, id_or_name: str) -> None:
        self.write_json([command_info(s) for s in self.commands.list(self.owner, id_or_name)])

    @web.authenticated
    @authorized_to("execute")
    async def post(self, id_or_name: str) -> None:
        request = CommandRequest.parse(self.json_body())
        if not request.cmd.strip():
            raise InvalidInput("cmd is empty: give the command line to run", field="cmd")
        process = await self.commands.start(self.owner, id_or_name, request)
        await self.stream(command_events(process))


class CommandHandler(StreamingHandler):
    @web.authenticated
    @authorized_to("execute")
    async def get(self, id_or_name: str, pid: str) -> None:
        """Connects to a running command: its output from now on, then its end."""
        await self.stream(command_events(self.commands.find(self.owner, id_or_name, _pid(pid))))

    @web.authenticated
    @authorized_to("execute")
    async def delete(self, id_or_name: str, pid: str) -> None:
        await self.commands.kill(self.owner, id_or_name, _pid(pid))
        self.no_content()


class CommandStdinHandler(StreamingHandler):
    @web.authenticated
    @authorized_to("execute")
    async def post(self, id_or_name: str, pid: str) -> None:
        given = CommandInput.parse(self.json_body())
        await self.commands.send_stdin(self.owner, id_or_name, _pid(pid), given.data.encode())
        self.no_content()


class WatchHandler(StreamingHandler):
    @web.authenticated
    @authorized_to("execute")
    async def get(self, id_or_name: str) -> None:
        path = self.get_query_argument("path", "") or "."
        recursive = self.get_query_argument("recursive", "false")
        if recursive not in ("true", "false"):
            raise InvalidInput("recursive must be 'true' or 'false'", field="recursive")
        sandbox_id = self.manager.get(self.owner, id_or_name).id
        registry = watchers(self)
        registry.reserve(sandbox_id)  # a watch holds a process in the sandbox: at most a few at once
        try:
            watch = await self.commands.watch(self.owner, id_or_name, path, recursive == "true")
            try:
                await self.stream(watch_events(watch))
            finally:
                await watch.close()
        finally:
            registry.release(sandbox_id)


class FileInfoHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("read")
    async def get(self, id_or_name: str) -> None:
        path = self.get_query_argument("path", "") or "."
        self.write_json(await self.manager.files.stat(self.manager.registry.use(self.owner, id_or_name), path))


class FileDirHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("write")
    async def post(self, id_or_name: str) -> None:
        path = self.get_query_argument("path", "")
        if not path.strip():
            raise InvalidInput("the query parameter 'path' is required", field="path")
        sandbox = self.manager.registry.use(self.owner, id_or_name)
        self.write_json(await self.manager.files.make_dir(sandbox, path), status=201)


class FileMoveHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("write")
    async def post(self, id_or_name: str) -> None:
        request = MoveRequest.parse(self.json_body())
        sandbox = self.manager.registry.use(self.owner, id_or_name)
        self.write_json(await self.manager.files.move(sandbox, request.source, request.destination))


class TimeoutHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("write")
    async def post(self, id_or_name: str) -> None:
        request = TimeoutRequest.parse(self.json_body())
        deadlines: Deadlines = self.settings[DEADLINES_SETTING]
        model = deadlines.set(self.owner, id_or_name, request.timeout)
        self.write_json(self.model_dict(model))


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("sandboxes/{id_or_name}/commands"), CommandsHandler),
    (api_path("sandboxes/{id_or_name}/commands/{pid}"), CommandHandler),
    (api_path("sandboxes/{id_or_name}/commands/{pid}/stdin"), CommandStdinHandler),
    (api_path("sandboxes/{id_or_name}/watch"), WatchHandler),
    (api_path("sandboxes/{id_or_name}/files/info"), FileInfoHandler),
    (api_path("sandboxes/{id_or_name}/files/dir"), FileDirHandler),
    (api_path("sandboxes/{id_or_name}/files/move"), FileMoveHandler),
    (api_path("sandboxes/{id_or_name}/timeout"), TimeoutHandler),
]
