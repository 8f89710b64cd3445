"""envd's process service on the E2B data plane (port 49983): commands and PTYs of a sandbox.

``/process.Process/<Method>`` over Connect-RPC (connect_rpc.py): Start and Connect stream a
process's events (its pid first, then its output, then its end, with keepalives while it is
quiet); List, SendInput, SendSignal, CloseStdin and Update act on a running one, chosen by pid or
tag; StreamInput writes a client stream's input as it arrives. The processes themselves are the backend's (``exec_stream``): they outlive these requests.
Commands run as the sandbox's user; a request for another (root) is refused with a 400.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated

from ..backends.base import SandboxBackend
from ..backends.exec_stream import ExecEvent, ExecStream
from ..core.commands import exit_status
from ..errors import InvalidInput, NotFound, SandboxError, TooLarge
from . import process_proto as pb
from .connect_rpc import (
    COMPRESSED,
    END_STREAM,
    MAX_REQUEST,
    ConnectError,
    ConnectHandler,
    ConnectService,
    envelope,
    error_json,
)
from .e2b_plane import ENVD_PORT, E2BPlaneMixin, register

PROCESS = ConnectService("process.Process")
STREAM_INPUT = "StreamInput"  # a client stream: served by the handler itself, as it arrives
KEEPALIVE_HEADER = "Keepalive-Ping-Interval"  # seconds between keepalive events the SDK asks for
DEFAULT_KEEPALIVE = 50.0
DEFAULT_PTY = (24, 80)  # rows, cols of a terminal asked for without a size


def end_event(code: int | None) -> dict[str, Any]:
    """envd's EndEvent for an exit code (negative: the signal that killed it; None: unknown)."""
    exit_code, error = exit_status(code)  # the project's REST stream says the same (core/commands.py)
    if code is None:
        return {"exit_code": exit_code, "exited": False, "status": "unknown", "error": error}
    if code < 0:
        return {"exit_code": exit_code, "exited": False, "status": error}
    return {"exit_code": code, "exited": True, "status": f"exit status {code}"}


def data_event(event: ExecEvent) -> dict[str, Any]:
    return {"event": {"data": {event.kind: event.data}}}


def basic_user(authorization: str | None) -> str | None:
    """The user an SDK names in ``Authorization: Basic base64("user:")`` (None when it names none)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True).decode().partition(":")[0] or None
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidInput("the Authorization header's Basic value is not base64 of 'user:'") from None


def info(stream: ExecStream) -> dict[str, Any]:
    config = stream.config
    process = {"cmd": config.argv[0], "args": config.argv[1:], "envs": config.env, "cwd": config.cwd}
    return {"config": process, "pid": stream.pid, "tag": config.tag}


@register(ENVD_PORT, PROCESS.template)
class ProcessHandler(ConnectHandler, E2BPlaneMixin):
    """``/process.Process/<Method>`` of one sandbox (the plane's mixin found it and its owner)."""

    service = PROCESS

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        # jupyter_server's APIHandler.finish would make every reply application/json: keep Connect's type
        kwargs.setdefault("set_content_type", self._headers.get("Content-Type", "application/json"))
        return super().finish(*args, **kwargs)

    _input: bytearray
    _input_target: ExecStream | None = None
    _input_error: BaseException | None = None

    @allow_unauthenticated  # the plane's prepare() authenticated (e2b_plane.py)
    async def post(self, method: str) -> None:
        if method == STREAM_INPUT:
            self.stream_input_reply()
        else:
            await super().post(method)

    # -- StreamInput: a client stream, its input written as it arrives ------------------
    async def data_received(self, chunk: bytes) -> None:  # type: ignore[override]
        if self.path_kwargs.get("method") != STREAM_INPUT:
            return ConnectHandler.data_received(self, chunk)
        if self._input_error is not None:
            return None  # the rest is read and dropped; the reply says what went wrong
        if not hasattr(self, "_input"):
            self._input = bytearray()
        self._input += chunk
        try:
            codec = self._codec(streaming=True)
            while len(self._input) >= 5:
                flags, size = struct.unpack(">BI", self._input[:5])
                if size > MAX_REQUEST:
                    raise TooLarge(f"one input message is at most {MAX_REQUEST} bytes")
                if flags & COMPRESSED:
                    raise ConnectError("internal", "compressed messages are not accepted (send them uncompressed)")
                if len(self._input) < 5 + size:
                    break
                body = bytes(self._input[5 : 5 + size])
                del self._input[: 5 + size]
                if not flags & END_STREAM:
                    await self.take_input(codec.decode(pb.STREAM_INPUT_REQUEST, body))
        except SandboxError as e:
            self._input_error = e
        return None

    async def take_input(self, request: dict[str, Any]) -> None:
        """One message of StreamInput: the first names the process, the next carry its input."""
        if request.get("start") is not None:
            self._input_target = self.selected(request["start"])
        elif request.get("data") is not None:
            if self._input_target is None:
                raise InvalidInput("StreamInput's first message must name the process (start)")
            given = request["data"].get("input") or {}
            await self._input_target.write(given.get("stdin") or given.get("pty") or b"")

    def stream_input_reply(self) -> None:
        codec = self._codec(streaming=True)
        self.set_header("Content-Type", f"application/connect+{codec.name}")
        if self._input_error is None and self._input_target is None:
            self._input_error = InvalidInput("StreamInput named no process")
        if self._input_error is None:
            self.write(envelope(0, codec.encode(pb.STREAM_INPUT_RESPONSE, {})))
        end = {} if self._input_error is None else {"error": error_json(self._input_error)}
        self.finish(envelope(END_STREAM, json.dumps(end).encode()))

    @property
    def backend(self) -> SandboxBackend:
        """The sandbox's backend; asking for it counts as the sandbox's activity (it is in use)."""
        self.manager.registry.use(self.owner, self.sandbox_id)
        return self.manager.backend

    def selected(self, request: dict[str, Any]) -> ExecStream:
        """The process a ProcessSelector names, by pid or by tag."""
        selector = request.get("process") or {}
        if selector.get("pid"):
            return self.backend.find_exec(self.sandbox_id, selector["pid"])
        tag = selector.get("tag")
        if not tag:
            raise InvalidInput("name the process by its pid or its tag", field="process")
        for stream in self.backend.exec_streams(self.sandbox_id):
            if stream.config.tag == tag:
                return stream
        raise NotFound(f"no running process tagged {tag!r} in sandbox {self.sandbox_id}")

    async def events(self, stream: ExecStream) -> AsyncIterator[dict[str, Any]]:
        """A process's events as envd streams them: its pid, its output, keepalives while it is quiet, its end."""
        try:
            interval = max(1.0, float(self.request.headers.get(KEEPALIVE_HEADER) or DEFAULT_KEEPALIVE))
        except ValueError:
            interval = DEFAULT_KEEPALIVE
        yield {"event": {"start": {"pid": stream.pid}}}
        reader = stream.events()
        gone = asyncio.ensure_future(self.client_gone.wait())
        try:
            while True:
                step = asyncio.ensure_future(anext(reader))
                while not step.done():
                    await asyncio.wait({step, gone}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                    if gone.done():  # the client left; the process runs on
                        step.cancel()
                        return
                    if not step.done():
                        yield {"event": {"keepalive": {}}}
                event = step.result()
                if event.kind == "exit":
                    yield {"event": {"end": end_event(event.exit_code)}}
                    return
                yield data_event(event)
        finally:
            gone.cancel()
            await reader.aclose()


@PROCESS.stream("Start", pb.START_REQUEST, pb.START_RESPONSE)
async def start(handler: ProcessHandler, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    config = request.get("process") or {}
    if not config.get("cmd"):
        raise InvalidInput("process.cmd is needed: the command to run", field="cmd")
    pty = None
    if request.get("pty") is not None:
        size = request["pty"].get("size") or {}
        pty = (size.get("rows") or DEFAULT_PTY[0], size.get("cols") or DEFAULT_PTY[1])
    stream = await handler.backend.exec_stream(
        handler.sandbox_id,
        [config["cmd"], *config.get("args", [])],
        cwd=config.get("cwd") or None,
        env=config.get("envs") or {},
        user=basic_user(handler.request.headers.get("Authorization")),
        pty=pty,
        stdin=bool(request.get("stdin")),
        tag=request.get("tag") or None,
    )
    async for reply in handler.events(stream):
        yield reply


@PROCESS.stream("Connect", pb.CONNECT_REQUEST, pb.CONNECT_RESPONSE)
async def connect(handler: ProcessHandler, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    async for reply in handler.events(handler.selected(request)):
        yield reply


@PROCESS.unary("List", pb.LIST_REQUEST, pb.LIST_RESPONSE)
async def list_processes(handler: ProcessHandler, request: dict[str, Any]) -> dict[str, Any]:
    return {"processes": [info(s) for s in handler.backend.exec_streams(handler.sandbox_id)]}


@PROCESS.unary("SendInput", pb.SEND_INPUT_REQUEST, pb.SEND_INPUT_RESPONSE)
async def send_input(handler: ProcessHandler, request: dict[str, Any]) -> dict[str, Any]:
    given = request.get("input") or {}
    # a oneof: the one that is set (an unset one reads as b"", as does empty input)
    await handler.selected(request).write(given.get("stdin") or given.get("pty") or b"")
    return {}


@PROCESS.unary("SendSignal", pb.SEND_SIGNAL_REQUEST, pb.SEND_SIGNAL_RESPONSE)
async def send_signal(handler: ProcessHandler, request: dict[str, Any]) -> dict[str, Any]:
    signum = request.get("signal") or 0
    if signum not in (9, 15):
        raise InvalidInput("signal must be SIGNAL_SIGTERM or SIGNAL_SIGKILL", field="signal")
    stream = handler.selected(request)
    if not stream.running:
        raise NotFound(f"process {stream.pid} has ended")
    await stream.signal(signum)
    return {}


@PROCESS.unary("CloseStdin", pb.CLOSE_STDIN_REQUEST, pb.CLOSE_STDIN_RESPONSE)
async def close_stdin(handler: ProcessHandler, request: dict[str, Any]) -> dict[str, Any]:
    await handler.selected(request).close_stdin()
    return {}


@PROCESS.unary("Update", pb.UPDATE_REQUEST, pb.UPDATE_RESPONSE)
async def update(handler: ProcessHandler, request: dict[str, Any]) -> dict[str, Any]:
    size = (request.get("pty") or {}).get("size")
    if size:
        await handler.selected(request).resize(size.get("rows") or 0, size.get("cols") or 0)
    return {}
